# Snakemake wrapper: dimensionality, domain and harmfulness geometry from activations. Logic lives in mechatlas.experiments.dimensionality.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.dimensionality import stages

    stages.geometry_stage(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.activations),
        Path(snakemake.input.info).parent,
        Path(snakemake.input.instruction),
        Path(snakemake.output.geometry).parent,
    )
