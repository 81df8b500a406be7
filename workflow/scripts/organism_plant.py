# Snakemake wrapper: fine-tune a planted organism. Logic lives in mechatlas.organism.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.organism import stages

stages.plant(
    validate_params(snakemake.config),
    snakemake.wildcards.planted,
    Path(snakemake.input.data),
    Path(snakemake.input.base),
    Path(snakemake.output.model),
)
