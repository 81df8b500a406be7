# Snakemake wrapper: ablation sweeps, cone check, domain transfer, harmfulness steering. Logic lives in mechatlas.experiments.dimensionality.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.dimensionality import stages

    stages.causal_stage(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.geometry).parent,
        Path(snakemake.output.summary).parent,
        threads=snakemake.threads,
    )
