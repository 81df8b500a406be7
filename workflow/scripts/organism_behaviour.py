# Snakemake wrapper: held-out behaviour of the organism. Logic lives in mechatlas.organism.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.organism import stages

stages.behaviour(
    validate_params(snakemake.config),
    Path(snakemake.input.data),
    Path(snakemake.input.model),
    Path(snakemake.output[0]),
    Path(snakemake.input.handwritten),
)
