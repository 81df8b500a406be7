# Snakemake wrapper: per-layer table, domain table, metrics.json with verdicts. Logic lives in mechatlas.experiments.dimensionality.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.experiments.dimensionality import stages

stages.metrics_stage(
    validate_params(snakemake.config),
    snakemake.wildcards.model,
    Path(snakemake.input.geometry).parent,
    Path(snakemake.output.metrics).parent,
)
