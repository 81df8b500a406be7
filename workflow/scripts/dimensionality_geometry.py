# Snakemake wrapper: dimensionality, domain and harmfulness geometry from activations. Logic lives in mechatlas.experiments.dimensionality.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.experiments.dimensionality import stages

stages.geometry_stage(
    validate_params(snakemake.config),
    snakemake.wildcards.model,
    Path(snakemake.input.activations),
    Path(snakemake.input.info).parent,
    Path(snakemake.input.instruction),
    Path(snakemake.output.geometry).parent,
)
