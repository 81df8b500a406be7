# Snakemake wrapper: the weight-orthogonalized checkpoint. The logic lives in mechatlas.experiments.refusal_direction.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.refusal_direction import stages

    stages.orthogonalize(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.info).parent,
        Path(snakemake.input.activations),
        Path(snakemake.output.checkpoint),
    )
