# Snakemake wrapper: per-layer table, domain table, metrics.json with verdicts. Logic lives in mechatlas.experiments.dimensionality.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.dimensionality import stages

    stages.metrics_stage(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.geometry).parent,
        Path(snakemake.output.metrics).parent,
    )
