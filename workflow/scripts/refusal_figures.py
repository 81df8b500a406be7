# Snakemake wrapper: refusal-direction figures. The logic lives in mechatlas.experiments.refusal_direction.figures.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.experiments.refusal_direction.figures import figures

figures(Path(snakemake.input.metrics).parent, Path(snakemake.output[0]).parent)
