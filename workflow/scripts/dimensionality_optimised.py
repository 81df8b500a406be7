# Snakemake wrapper: RDO, refusal cones, the smallest bypassing subspace, multi-direction ablation. Logic lives in mechatlas.experiments.dimensionality.optimised.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake) as params:
    from mechatlas.experiments.dimensionality import optimised

    optimised.optimised_stage(
        params,
        snakemake.wildcards.model,
        Path(snakemake.input.info).parent,
        Path(snakemake.input.subspaces).parent,
        Path(snakemake.output.summary).parent,
        threads=snakemake.threads,
    )
