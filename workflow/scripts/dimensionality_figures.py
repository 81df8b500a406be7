# Snakemake wrapper: dimensionality figures. Logic lives in mechatlas.experiments.dimensionality.figures.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.experiments.dimensionality.figures import figures

figures(Path(snakemake.input.metrics).parent, Path(snakemake.output.readme).parent)
