# Snakemake wrapper: refusal-direction figures. Logic lives in mechatlas.refusal_direction.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
from mechatlas import refusal_direction as stages

stages.figures(Path(snakemake.input.metrics).parent, Path(snakemake.output[0]).parent)  # noqa: F821
