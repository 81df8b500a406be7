# Snakemake wrapper: generate the site's pages from literature/ and data/results/. Logic lives in mechatlas.site.pages.
from pathlib import Path

from mechatlas.pipeline.jobs import job

with job(snakemake):
    from mechatlas.site.pages import write_site_pages

    out = Path(snakemake.output[0])
    write_site_pages(
        literature=Path("literature"),
        results_root=Path("data/results"),
        docs_dir=out.parent,
        figures_root=out.parent / "figures",
        dvc_lock=Path("dvc.lock"),
        sources_dir=Path("pages"),
    )
