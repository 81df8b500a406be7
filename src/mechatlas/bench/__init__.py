"""``make bench``: what the pipeline costs, written to reports/bench/.

Three reports, each a JSON file and a Markdown page:

- ``refusal_direction``: extraction overhead, batched candidate scoring and extraction memory on the
  organism (``mechatlas.bench.refusal_direction``);
- ``estimators``: one ``subspace_dimensionality`` call at d = 4096 against the dense implementation it
  replaced (``mechatlas.bench.estimators``);
- ``real_shape``: the whole study's stages on a random-weight model with Qwen3-0.6B's exact shape, at
  small n on CPU and extrapolated, with peak memory per stage and a projection for Llama-3.1-8B on one
  GPU (``mechatlas.bench.real_shape``).

``python -m mechatlas.bench [--quick] [--only NAME ...]``. These are reports, not timed tests; the load
average of the machine is recorded beside every timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORTS = ("refusal_direction", "estimators", "real_shape")


def run(
    only: Sequence[str] = REPORTS, *, quick: bool = False, params_path: Path = Path("params.yaml")
) -> dict[str, Any]:
    """Run the named reports (default: all) and return their summaries by name."""
    import importlib

    out: dict[str, Any] = {}
    for name in only:
        if name not in REPORTS:
            raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(REPORTS)}")
    for name in REPORTS:
        if name in only:
            module = importlib.import_module(f"mechatlas.bench.{name}")
            out[name] = (
                module.run(quick=quick) if name == "estimators" else module.run(params_path, quick=quick)
            )
    return out
