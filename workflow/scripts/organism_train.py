# Snakemake wrapper: train the organism. Logic lives in mechatlas.organism.stages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.organism import stages

    stages.train(params, Path(snakemake.input[0]), Path(snakemake.output.model))
