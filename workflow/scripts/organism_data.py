# Snakemake wrapper: generate the organism's instructions. Logic lives in mechatlas.organism.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.organism import stages

    stages.write_instructions(
        params,
        Path(snakemake.output.instructions),
        Path(snakemake.output.prompts),
        Path(snakemake.input.vocabulary),
    )
