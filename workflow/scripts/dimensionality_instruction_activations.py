# Snakemake wrapper: activations at the last instruction token. Logic lives in mechatlas.experiments.dimensionality.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.experiments.dimensionality import stages

stages.instruction_activations(
    validate_params(snakemake.config),
    snakemake.wildcards.model,
    Path(snakemake.input.activations),
    Path(snakemake.output.activations),
    threads=snakemake.threads,
)
