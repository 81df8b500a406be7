# Snakemake wrapper: dimensionality figures. Logic lives in mechatlas.experiments.dimensionality.figures.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake):
    from mechatlas.experiments.dimensionality.figures import figures

    figures(Path(snakemake.input.metrics).parent, Path(snakemake.output.readme).parent)
