# Snakemake wrapper: held-out behaviour of the organism. Logic lives in mechatlas.organism.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.organism import stages

    stages.behaviour(
        params,
        Path(snakemake.input.data),
        Path(snakemake.input.model),
        Path(snakemake.output[0]),
        Path(snakemake.input.handwritten),
    )
