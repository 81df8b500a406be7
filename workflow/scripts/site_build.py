# Snakemake wrapper: `mkdocs build --strict` into site/. Logic lives in mechatlas.site.build.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake):
    from mechatlas.site.build import build_site

    build_site(Path(snakemake.input.config), Path(snakemake.output.index).parent)
