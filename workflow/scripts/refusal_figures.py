# Snakemake wrapper: refusal-direction figures. The logic lives in mechatlas.experiments.refusal_direction.figures.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake):
    from mechatlas.experiments.refusal_direction.figures import figures

    figures(Path(snakemake.input.metrics).parent, Path(snakemake.output[0]).parent)
