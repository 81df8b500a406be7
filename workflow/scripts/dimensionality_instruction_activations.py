# Snakemake wrapper: activations at the last instruction token. Logic lives in mechatlas.experiments.dimensionality.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.dimensionality import stages

    stages.instruction_activations(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.activations),
        Path(snakemake.output.activations),
        threads=snakemake.threads,
    )
