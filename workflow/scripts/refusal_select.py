# Snakemake wrapper: score candidate directions and select one. The logic lives in mechatlas.experiments.refusal_direction.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.refusal_direction import stages

    stages.select(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.activations),
        Path(snakemake.output.info).parent,
    )
