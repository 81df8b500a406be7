# Snakemake wrapper: the literature referee before the site is built. Logic lives in mechatlas.site.build.
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
from mechatlas.site.build import check_literature

check_literature(Path("literature"), Path("data/results"), Path("pages"), Path(snakemake.output[0]))
