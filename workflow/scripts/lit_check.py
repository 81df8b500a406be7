# Snakemake wrapper: the literature referee before the site is built. Logic lives in mechatlas.site.build.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake):
    from mechatlas.site.build import check_literature

    check_literature(Path("literature"), Path("data/results"), Path("pages"), Path(snakemake.output[0]))
