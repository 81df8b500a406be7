"""Keeping Snakemake and DVC in agreement.

DVC owns versions: it decides by content hash which stages are stale, and each stage calls one
Snakemake target with ``--allowed-rules`` (so a stage never rewrites another stage's outputs) and
``--forcerun`` (DVC has already decided it must run).

Snakemake decides by its own metadata, and falls back to file mtimes where that metadata is missing, as in
a fresh clone after ``dvc pull``, or after ``dvc checkout`` rewrote mtimes. ``sync`` closes that gap:
when DVC reports every stage up to date, the files on disk are exactly what ``dvc.lock`` records, so it
is truthful to mark them up to date for Snakemake too (``snakemake --touch``). Then a pulled, up-to-date
tree does no work under either tool.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mechatlas.errors import MechatlasError

PROFILE = "workflow/profiles/default"


def _snakemake(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "--profile", PROFILE, *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def snakemake_has_work(target: str = "all") -> bool:
    """True when a Snakemake dry run of ``target`` would run any job."""
    done = _snakemake("--dry-run", "--quiet", "rules", target)
    if done.returncode != 0:
        raise MechatlasError(f"snakemake dry run failed:\n{done.stderr.strip()[-2000:]}")
    return "Nothing to be done" not in done.stdout + done.stderr


def dvc_up_to_date() -> bool:
    """True when ``dvc status`` finds every stage's dependencies and outputs as dvc.lock records them."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "status", "--quiet"], capture_output=True, text=True
    )
    return done.returncode == 0


def sync(target: str = "all") -> str:
    """Mark DVC-verified outputs as up to date for Snakemake, if (and only if) DVC says they are."""
    if not snakemake_has_work(target):
        return "snakemake: nothing to be done"
    if not dvc_up_to_date():
        return "dvc reports stale stages; run `dvc repro` (or `make run`) first"
    touched = _snakemake("--touch", "--quiet", "all", target)
    if touched.returncode != 0:
        raise MechatlasError(f"snakemake --touch failed:\n{touched.stderr.strip()[-2000:]}")
    if snakemake_has_work(target):
        raise MechatlasError("snakemake still sees work after syncing with DVC; inspect `snakemake -n all`")
    return "snakemake metadata synced with dvc.lock: nothing to be done"
