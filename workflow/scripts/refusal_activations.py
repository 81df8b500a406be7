# Snakemake wrapper: post-instruction activations. The logic lives in mechatlas.experiments.refusal_direction.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.refusal_direction import stages

    stages.extract_activations(params, snakemake.wildcards.model, Path(snakemake.output[0]))
