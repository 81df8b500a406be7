"""``python -m mechatlas.bench [--quick] [--only NAME ...]`` (see ``mechatlas.bench``)."""

from __future__ import annotations

import argparse

from mechatlas.bench import REPORTS, run

parser = argparse.ArgumentParser(
    prog="python -m mechatlas.bench", description="Benchmarks; writes reports/bench/."
)
parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller samples")
parser.add_argument("--only", nargs="+", choices=REPORTS, default=list(REPORTS), help="which reports to run")
arguments = parser.parse_args()
run(arguments.only, quick=arguments.quick)
