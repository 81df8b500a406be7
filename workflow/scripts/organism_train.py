# Snakemake wrapper: train the organism. Logic lives in mechatlas.organism.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.organism import stages

stages.train(validate_params(snakemake.config), Path(snakemake.input[0]), Path(snakemake.output.model))
