# Snakemake wrapper: activations at the last instruction token. Logic lives in mechatlas.dimensionality.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821
from mechatlas import dimensionality as stages
from mechatlas.config import validate_params

stages.instruction_activations(validate_params(snakemake.config), snakemake.wildcards.model, Path(snakemake.input.activations), Path(snakemake.output.activations), threads=snakemake.threads)  # noqa: F821
