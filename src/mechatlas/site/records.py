"""The result records the site shows, read whole: numbers, claims, methods, provenance, figures, dvc.lock.

``mechatlas.literature.results`` reads only the links from a result to the literature; a result page
needs the whole record. A page must be trustworthy enough to cite, so a record whose provenance is
incomplete is an error here (the page would not say how to reproduce it), and what ``dvc.lock``
recorded about the stage that produced the record is shown as it is, including "not recorded yet".

Two kinds of record live under ``data/results/``:

- ``<experiment>/<model>/metrics.json``: one experiment on one model;
- ``organism/behaviour.json``: the built-in organism's held-out behaviour (organism-level, no model axis).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mechatlas import records
from mechatlas.errors import ArtifactError
from mechatlas.records import ClaimVerdict
from mechatlas.records import provenance_gaps as provenance_gaps  # read by the site's checks

METRICS_NAME = "metrics.json"
ORGANISM_RECORD = Path("organism") / "behaviour.json"
FIGURE_SUFFIXES = (".svg", ".png", ".jpg", ".jpeg")  # preferred first: one figure per stem is shown


@dataclass(frozen=True)
class LockedStage:
    """One ``dvc.lock`` stage that produced a record: its command and the hashes of its deps and outs."""

    name: str
    cmd: str
    deps: tuple[tuple[str, str], ...]
    outs: tuple[tuple[str, str], ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def inputs_hash(self) -> str:
        """One short digest of every dep's md5: equal digests mean the stage ran on the same inputs."""
        blob = "\n".join(f"{path} {md5}" for path, md5 in sorted(self.deps))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Result:
    """A whole result record, as the site shows it. ``model`` is None for the organism's behaviour."""

    experiment: str
    model: str | None
    file: str  # the record's path as shown to readers, relative to the project root
    metrics: Mapping[str, Any]
    claims: tuple[ClaimVerdict, ...]
    methods: tuple[str, ...]
    provenance: Mapping[str, Any]
    raw: str  # the record's text, published next to its page as the citable evidence
    figures: tuple[str, ...] = ()  # docs-relative paths
    figure_notes: str | None = None  # docs-relative path of the figures' README.md (how they were made)
    stages: tuple[LockedStage, ...] = ()
    lock_found: bool = False  # whether a dvc.lock file exists at all
    lock_matches: bool | None = None  # dvc.lock's md5 of the record equals the file's; None: not comparable

    @property
    def is_organism(self) -> bool:
        return self.model is None

    @property
    def page(self) -> str:
        """The docs-relative path of this record's page."""
        if self.model is None:
            return "generated/results/organism/index.md"  # pages.ORGANISM_PAGE
        return f"generated/results/{self.experiment}/{self.model}/index.md"

    def replicate_fields(self, paper: str, claim: str) -> Mapping[str, Any]:
        """Everything the record says about one verdict, including fields newer than this site knows
        (per-judge verdicts, sub-criteria, control intervals); {} when absent."""
        try:
            items = json.loads(self.raw).get("replicates", [])
        except (ValueError, AttributeError):
            return {}
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping) and item.get("paper") == paper and item.get("claim") == claim:
                return item
        return {}

    @property
    def key(self) -> str:
        return "organism" if self.model is None else f"{self.experiment}/{self.model}"


def read_results(
    results_root: Path,
    *,
    project_root: Path,
    docs_dir: Path,
    figures_root: Path,
    dvc_lock: Path | None,
) -> list[Result]:
    """Every record under ``results_root``: the organism's behaviour first, then experiments by name.

    Raises ``ArtifactError`` naming the file and key of a record that cannot be shown faithfully.
    """
    lock = read_dvc_lock(dvc_lock) if dvc_lock is not None and dvc_lock.is_file() else None
    found: list[tuple[Path, str, str | None]] = []
    organism = results_root / ORGANISM_RECORD
    if organism.is_file():
        found.append((organism, "organism", None))
    for path in sorted(results_root.glob(f"*/*/{METRICS_NAME}")):
        found.append((path, path.parent.parent.name, path.parent.name))
    results = []
    for path, experiment, model in found:
        figures_dir = figures_root / experiment / model if model else figures_root / experiment
        result = read_result(
            path,
            experiment,
            model,
            display=_shown(path, project_root),
            figures=_figures(figures_dir, docs_dir),
            lock=lock,
        )
        notes = figures_dir / "README.md"
        if notes.is_file() and result.figures:
            result = dataclasses.replace(result, figure_notes=_docs_relative(notes, docs_dir))
        results.append(result)
    return results


def read_result(
    path: Path,
    experiment: str,
    model: str | None,
    *,
    display: str,
    figures: tuple[str, ...] = (),
    lock: Mapping[str, LockedStage] | None = None,
) -> Result:
    """Read and check one record; ``display`` is its path as readers see it (and as dvc.lock names it).

    ``mechatlas.records.read_result`` reads and checks it; this adds what the page shows beside it.
    """
    record = records.read_result(path, display=display)
    stages = tuple(stage for stage in (lock or {}).values() if _produces(stage, display))
    return Result(
        experiment=experiment,
        model=model,
        file=display,
        metrics=record.metrics,
        claims=record.replicates,
        methods=record.methods,
        provenance=record.provenance,
        raw=record.raw,
        figures=figures,
        stages=stages,
        lock_found=lock is not None,
        lock_matches=_lock_matches(stages, display, hashlib.md5(path.read_bytes()).hexdigest()),
    )


def _figures(directory: Path, docs_dir: Path) -> tuple[str, ...]:
    if not directory.is_dir():
        return ()
    candidates = [
        p
        for p in directory.iterdir()
        # Dotfiles are half-written temporaries of an atomic write; MkDocs does not publish them either.
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FIGURE_SUFFIXES
    ]
    best: dict[str, Path] = {}
    for p in sorted(candidates, key=lambda p: FIGURE_SUFFIXES.index(p.suffix.lower())):
        best.setdefault(p.stem, p)  # an SVG wins over a PNG of the same figure left by an older run
    figures = sorted(best.values())
    return tuple(_docs_relative(p, docs_dir) for p in figures)


def _docs_relative(path: Path, docs_dir: Path) -> str:
    try:
        return path.resolve().relative_to(docs_dir.resolve()).as_posix()
    except ValueError:
        raise ArtifactError(
            f"{path}: figures must live inside the site's docs folder ({docs_dir}) to be shown"
        ) from None


def _shown(path: Path, project_root: Path) -> str:
    try:
        return path.resolve().relative_to(project_root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# --- dvc.lock -----------------------------------------------------------------------------------


def read_dvc_lock(path: Path) -> dict[str, LockedStage]:
    """The stages of a ``dvc.lock`` file by name; raises ``ArtifactError`` if it cannot be read."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ArtifactError(
            f"{path}: not valid YAML ({error}); restore it from git or rerun `dvc repro`"
        ) from None
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return {}
    return {
        str(name): LockedStage(
            name=str(name),
            cmd=" && ".join(stage["cmd"])
            if isinstance(stage.get("cmd"), list)
            else str(stage.get("cmd", "")),
            deps=_entries(stage.get("deps")),
            outs=_entries(stage.get("outs")),
            params=dict(stage["params"]) if isinstance(stage.get("params"), dict) else {},
        )
        for name, stage in stages.items()
        if isinstance(stage, dict)
    }


def _entries(items: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        return ()
    entries = []
    for item in items:
        if isinstance(item, dict) and "path" in item:
            digest = item.get("md5") or item.get("etag") or item.get("checksum") or "(no hash)"
            entries.append((str(item["path"]).rstrip("/"), str(digest)))
    return tuple(entries)


def _produces(stage: LockedStage, record: str) -> bool:
    return any(record == out or record.startswith(out + "/") for out, _ in stage.outs)


def _lock_matches(stages: tuple[LockedStage, ...], record: str, md5: str) -> bool | None:
    """Whether dvc.lock's md5 of the record file is the file's own md5; None when it hashes a folder."""
    for stage in stages:
        for out, recorded in stage.outs:
            if out == record:
                return recorded == md5
    return None
