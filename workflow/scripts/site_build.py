# Snakemake wrapper: `mkdocs build --strict` into site/. Logic lives in mechatlas.site.build.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.site.build import build_site

build_site(Path(snakemake.input.config), Path(snakemake.output.index).parent)
