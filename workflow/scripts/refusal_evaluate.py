# Snakemake wrapper: generation evaluation and metrics.json. The logic lives in mechatlas.experiments.refusal_direction.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.experiments.refusal_direction import stages

stages.evaluate(
    validate_params(snakemake.config), snakemake.wildcards.model, Path(snakemake.output.metrics).parent
)
