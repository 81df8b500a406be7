# Snakemake wrapper: ablation sweeps, cone check, domain transfer, harmfulness steering. Logic lives in mechatlas.experiments.dimensionality.stages.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.config import validate_params
from mechatlas.experiments.dimensionality import stages

stages.causal_stage(
    validate_params(snakemake.config),
    snakemake.wildcards.model,
    Path(snakemake.input.geometry).parent,
    Path(snakemake.output.summary).parent,
    threads=snakemake.threads,
)
