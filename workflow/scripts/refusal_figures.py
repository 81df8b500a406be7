# Snakemake wrapper: refusal-direction figures. Logic lives in mechatlas.refusal_figures.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.experiments.refusal_direction.figures import figures

figures(Path(snakemake.input.metrics).parent, Path(snakemake.output[0]).parent)
