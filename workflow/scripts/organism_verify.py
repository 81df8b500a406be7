# Snakemake wrapper: measure a planted organism's planted property. Logic lives in mechatlas.organism.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.organism import stages

    stages.verify(
        params,
        snakemake.wildcards.planted,
        Path(snakemake.input.data),
        Path(snakemake.input.model),
        Path(snakemake.output[0]),
    )
