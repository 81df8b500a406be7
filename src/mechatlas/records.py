"""Provenance and the result record contract.

Every ``metrics.json`` under ``data/results/<experiment>/<model>/`` follows DESIGN.md: the numbers
(with confidence intervals), ``replicates`` (paper claims addressed, with a verdict), ``methods``
(taxonomy ids) and ``provenance`` (git commit, params hash, model id and revision, seeds, and the
command that reproduces the result).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from mechatlas.config import Params, params_hash
from mechatlas.io import write_json

Verdict = Literal["replicated", "partially", "not replicated", "pending"]


VERDICTS: tuple[str, ...] = ("replicated", "partially", "not replicated", "pending")


def git_commit(root: str | Path = ".") -> str:
    """The current commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def provenance(
    params: Params,
    *,
    sections: Sequence[str],
    model_name: str,
    model_id: str,
    model_revision: str | None,
    target: str,
    seeds: Mapping[str, int],
) -> dict[str, Any]:
    """What it takes to reproduce a result: commit, params hash of the sections used, model, seeds, command."""
    dumped = params.model_dump(mode="json")
    used = {name: dumped[name] for name in sections}
    used["models"] = {model_name: dumped["models"][model_name]}
    return {
        "git_commit": git_commit(),
        "params_hash": params_hash(used),
        "params_sections": list(sections),
        "model": {"name": model_name, "id": model_id, "revision": model_revision},
        "seeds": dict(seeds),
        "command": f"snakemake --profile workflow/profiles/default {target}",
    }


def write_result(
    path: str | Path,
    *,
    metrics: Mapping[str, Any],
    replicates: Sequence[Mapping[str, str]],
    methods: Sequence[str],
    provenance: Mapping[str, Any],
) -> None:
    """Write a ``metrics.json`` in the result contract (atomically)."""
    for claim in replicates:
        if claim.get("verdict") not in VERDICTS:
            raise ValueError(f"verdict {claim.get('verdict')!r} is not one of {VERDICTS}")
    write_json(
        path,
        {
            "metrics": dict(metrics),
            "replicates": [dict(c) for c in replicates],
            "methods": list(methods),
            "provenance": dict(provenance),
        },
    )
