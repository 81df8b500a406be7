# Snakemake wrapper: measure a planted organism's planted property. Logic lives in mechatlas.organism.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.organism import stages

stages.verify(
    validate_params(snakemake.config),
    snakemake.wildcards.planted,
    Path(snakemake.input.data),
    Path(snakemake.input.model),
    Path(snakemake.output[0]),
)
