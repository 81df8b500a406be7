# Snakemake wrapper: fine-tune a planted organism. Logic lives in mechatlas.organism.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.organism import stages

    stages.plant(
        params,
        snakemake.wildcards.planted,
        Path(snakemake.input.data),
        Path(snakemake.input.base),
        Path(snakemake.output.model),
    )
