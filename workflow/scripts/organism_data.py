# Snakemake wrapper: generate the organism's instructions. Logic lives in mechatlas.organism.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.organism import stages

stages.write_instructions(
    validate_params(snakemake.config),
    Path(snakemake.output.instructions),
    Path(snakemake.output.prompts),
    Path(snakemake.input.vocabulary),
)
