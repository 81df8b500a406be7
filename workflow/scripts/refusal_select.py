# Snakemake wrapper: score candidate directions and select one. The logic lives in mechatlas.experiments.refusal_direction.
# ruff: noqa: E402, F821, SIM115  (Snakemake injects `snakemake`; stderr goes to the log before any import)
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.experiments.refusal_direction import stages

stages.select(
    validate_params(snakemake.config),
    snakemake.wildcards.model,
    Path(snakemake.input.activations),
    Path(snakemake.output.info).parent,
)
