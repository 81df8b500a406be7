"""The result record contract: the verdict vocabulary, provenance, and the one writer and reader.

Every ``metrics.json`` under ``data/results/<experiment>/<model>/`` follows DESIGN.md: the numbers
(with confidence intervals), ``replicates`` (paper claims addressed, with a ``Verdict``), ``methods``
(taxonomy ids) and ``provenance`` (the code that produced it, params hash, model id and revision,
seeds, and the command that reproduces the result). ``write_result`` is the only writer and ``read_result`` the
reader; the literature referee and the site take the verdict vocabulary from here.

Fields the verdicts rely on (schema additions of the falsification work, all optional for readers): every rate
carries ``ci_method`` (``INTERVAL_METHODS``; a cluster bootstrap also carries ``clusters``) and a record's
metrics say ``interval_unit`` (what its rate intervals resample); the refusal-direction record adds
``verdicts_by_judge`` (judge -> claim -> verdict) and ``judge_flips`` (claims whose verdict differs between
judges), and the dimensionality record's metrics carry the same two fields; the dimensionality record's
``causal`` adds matched ``controls`` per sweep, the cone's ``sampled`` and ``null`` (pseudo-domain) cones, the
transfer ``gap`` and ``null_gap``, and ``detection_limits``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from mechatlas.config import Params, params_hash
from mechatlas.errors import ArtifactError
from mechatlas.io import write_json
from mechatlas.numerics import numerics_record


class Verdict(StrEnum):
    """How far our result reproduces a paper claim, spelled as records and paper files spell it."""

    replicated = "replicated"
    partially = "partially"
    not_replicated = "not replicated"
    pending = "pending"

    @classmethod
    def parse(cls, text: object) -> Verdict | None:
        """The verdict ``text`` spells exactly, or None (``not-replicated`` is not a verdict)."""
        return cls(text) if isinstance(text, str) and text in cls._value2member_map_ else None

    @property
    def slug(self) -> str:
        """The verdict with hyphens for spaces, for use in a CSS class name (``not-replicated``)."""
        return self.value.replace(" ", "-")


#: How a rate's 95% interval was computed (its ``ci_method``): per item, over whole clusters, or a
#: percentile bootstrap of a mean.
INTERVAL_METHODS = ("wilson", "cluster bootstrap", "bootstrap")


#: The verdicts as plain strings, in order.
VERDICTS: tuple[str, ...] = tuple(verdict.value for verdict in Verdict)


#: What every record's provenance must hold for a reader to reproduce it.
REQUIRED_PROVENANCE = (
    "code.sha256",
    "params_hash",
    "params_sections",
    "model.name",
    "model.id",
    "seeds",
    "command",
)


RECORD_KEYS = ("metrics", "replicates", "methods", "provenance")
#: The DVC metrics file written beside every record (``dvc metrics show`` / ``diff``): its headline rates.
HEADLINE = "headline.json"


@dataclass(frozen=True)
class ClaimVerdict:
    """One ``replicates`` entry of a record: the paper claim it addresses, our verdict and why."""

    paper: str
    claim: str
    verdict: Verdict
    reason: str | None


@dataclass(frozen=True)
class ResultRecord:
    """A result record as read back: ``raw`` is the file's text, the citable evidence."""

    metrics: Mapping[str, Any]
    replicates: tuple[ClaimVerdict, ...]
    methods: tuple[str, ...]
    provenance: Mapping[str, Any]
    raw: str


#: Where a stage's code lives; ``dvc.yaml`` lists, per stage, every such file its rules can run.
CODE_PREFIXES = ("src/", "workflow/scripts/")

#: The source checkout this module runs from (``src/mechatlas/records.py`` -> the repository root).
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def code_provenance(stage: str, root: Path = SOURCE_ROOT) -> dict[str, Any]:
    """The code behind a result of DVC stage ``stage``: a content hash and the commit that holds it.

    ``sha256`` hashes the path and content of every code file ``dvc.yaml`` lists for the stage (the
    import closure of its rules, which ``mechatlas workflow deps`` keeps exact), so it changes exactly
    when DVC would rerun the stage for its code. ``commit`` is the last commit that touched those files,
    or null while any of them differs from that commit; it never depends on other files, so rewriting
    ``dvc.lock`` during a run, or committing results afterwards, changes nothing. Outside a source
    checkout (no ``dvc.yaml``) both are ``"unknown"``.
    """
    dvc_file = root / "dvc.yaml"
    if not dvc_file.exists():
        return {"stage": stage, "sha256": "unknown", "files": 0, "commit": "unknown"}
    stages = yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("stages", {})
    if stage not in stages:
        raise ArtifactError(
            f"{dvc_file.name}: no stage `{stage}`; provenance names the stage that writes a result"
        )
    body = stages[stage].get("do", stages[stage])
    files = sorted(dep for dep in body.get("deps", []) if str(dep).startswith(CODE_PREFIXES))
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return {
        "stage": stage,
        "sha256": digest.hexdigest(),
        "files": len(files),
        "commit": _last_commit(root, files),
    }


def _last_commit(root: Path, files: Sequence[str]) -> str | None:
    """The last commit touching ``files``, or None if any differs from it (``unknown`` outside git)."""
    try:
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *files],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        last = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--", *files],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return None if changed or not last else last


def code_version(provenance: Mapping[str, Any]) -> str:
    """The code of a record in words: ``commit 0123456789ab`` or ``uncommitted code (sha256 89ab…)``."""
    code = provenance.get("code") or {}
    commit, digest = code.get("commit"), str(code.get("sha256", "unknown"))
    if commit and commit != "unknown":
        return f"commit {str(commit)[:12]}"
    if digest == "unknown":
        return "unknown code (not run from a source checkout)"
    return f"uncommitted code (sha256 {digest[:12]})"


def provenance(
    params: Params,
    *,
    sections: Sequence[str],
    model_name: str,
    model_id: str,
    model_revision: str | None,
    target: str,
    seeds: Mapping[str, int],
    stage: str,
    model_chat: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What it takes to reproduce a result: its code, params hash of the sections used, model, seeds,
    command, and the CPU kernels it was computed with (``mechatlas.numerics``).

    ``stage`` is the DVC stage that writes the result (see ``code_provenance``). ``model_chat``
    (``ChatFormat.record()``: the rendered template, pinned date, system prompt and stop tokens) goes
    under ``model.chat`` when given.
    """
    dumped = params.model_dump(mode="json")
    used = {name: dumped[name] for name in sections}
    used["models"] = {model_name: dumped["models"][model_name]}
    model: dict[str, Any] = {"name": model_name, "id": model_id, "revision": model_revision}
    if model_chat is not None:
        model["chat"] = dict(model_chat)
    return {
        "code": code_provenance(stage),
        "params_hash": params_hash(used),
        "params_sections": list(sections),
        "model": model,
        "seeds": dict(seeds),
        "command": f"snakemake --profile workflow/profiles/default {target}",
        "numerics": numerics_record(),
    }


def write_result(
    path: str | Path,
    *,
    metrics: Mapping[str, Any],
    replicates: Sequence[Mapping[str, str]],
    methods: Sequence[str],
    provenance: Mapping[str, Any],
    headline: str | Path | None = None,
) -> None:
    """Write a ``metrics.json`` in the result contract (atomically); refuses a verdict not in ``Verdict``.

    Its headline rates go to ``headline`` (by default ``headline.json`` beside the record; records that share
    a folder name their own)."""
    for claim in replicates:
        if Verdict.parse(claim.get("verdict")) is None:
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
    write_json(Path(path).with_name(HEADLINE) if headline is None else headline, headline_metrics(metrics))


def headline_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The record's rates and estimates with intervals, flat and small enough for ``dvc metrics show``.

    Every ``{"value": ..., "ci95": [low, high]}`` leaf becomes ``value``, ``ci_low``, ``ci_high`` (and
    ``n``) under its dotted path; breakdowns (``per_*`` keys) and tables stay in the record.

    >>> headline_metrics({"refusal_rate": {"harmful": {"value": 0.99, "ci95": [0.97, 1.0], "n": 400}},
    ...                   "per_domain": {"x": {"value": 1.0, "ci95": [0.9, 1.0]}}})
    {'refusal_rate.harmful': {'value': 0.99, 'ci_low': 0.97, 'ci_high': 1.0, 'n': 400}}
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(value, Mapping) or str(key).startswith("per_"):
            continue
        name = f"{prefix}{key}"
        ci = value.get("ci95")
        if "value" in value and isinstance(ci, list | tuple) and len(ci) == 2:
            out[name] = {"value": value["value"], "ci_low": ci[0], "ci_high": ci[1]}
            if "n" in value:
                out[name]["n"] = value["n"]
        else:
            out.update(headline_metrics(value, f"{name}."))
    return out


def read_result(path: str | Path, *, display: str | None = None) -> ResultRecord:
    """Read and check one record; ``display`` is its path as readers see it (default: ``path``).

    Raises ``ArtifactError``, one line naming the file, for a record that is not valid JSON, lacks a
    part of the contract, has a ``replicates`` entry without a known verdict, or has incomplete
    provenance.
    """
    shown = display if display is not None else Path(path).as_posix()
    raw = Path(path).read_bytes().decode("utf-8", errors="replace")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ArtifactError(
            f"{shown}:{error.lineno}: invalid JSON ({error.msg}); rerun the stage that writes it"
        ) from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{shown}: a result record must be a JSON object; rerun the stage that writes it")
    missing = [key for key in RECORD_KEYS if key not in data]
    if missing:
        raise ArtifactError(
            f"{shown}: the record has no {', '.join(f'`{key}`' for key in missing)}; "
            "results follow the contract in DESIGN.md (rerun the stage that writes it)"
        )
    gaps = provenance_gaps(data["provenance"])
    if gaps:
        raise ArtifactError(
            f"{shown}: incomplete provenance, missing {', '.join(f'`provenance.{g}`' for g in gaps)}; "
            "a result page must say how to reproduce it: rerun the stage with the current code "
            "(mechatlas.records.provenance writes every field)"
        )
    return ResultRecord(
        metrics=data["metrics"] if isinstance(data["metrics"], dict) else {},
        replicates=_claim_verdicts(data["replicates"], shown),
        methods=tuple(str(method) for method in data["methods"]),
        provenance=data["provenance"],
        raw=raw,
    )


def provenance_gaps(provenance: object) -> list[str]:
    """The required provenance fields that are missing or empty (``model.revision`` may be null)."""
    if not isinstance(provenance, dict):
        return list(REQUIRED_PROVENANCE)
    gaps = []
    for dotted in REQUIRED_PROVENANCE:
        value: Any = provenance
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or value == "" or (dotted == "params_sections" and not value):
            gaps.append(dotted)
    if not isinstance(provenance.get("model"), dict) or "revision" not in provenance["model"]:
        gaps.append("model.revision")
    return gaps


def _claim_verdicts(replicates: object, shown: str) -> tuple[ClaimVerdict, ...]:
    if not isinstance(replicates, list):
        raise ArtifactError(f"{shown}: `replicates` is not a list; run `mechatlas lit check` for details")
    claims = []
    for index, item in enumerate(replicates):
        verdict = Verdict.parse(item.get("verdict")) if isinstance(item, dict) else None
        if (
            verdict is None
            or not isinstance(item.get("paper"), str)
            or not isinstance(item.get("claim"), str)
        ):
            raise ArtifactError(
                f"{shown}: `replicates.{index}` is not a {{paper, claim, verdict}} entry; "
                "run `mechatlas lit check` for details"
            )
        reason = item.get("reason")
        claims.append(ClaimVerdict(item["paper"], item["claim"], verdict, str(reason) if reason else None))
    return tuple(claims)


def planted_answer(verification: Mapping[str, Any]) -> dict[str, Any]:
    """What a planted organism's verification record (its ``metrics``) says was planted: the kind, the
    causal k, the domain groups, the cone rank they imply, and whether the planted property held."""
    kind = str(verification["kind"])
    groups = [sorted(g) for g in verification.get("groups") or []]
    return {
        "name": str(verification["name"]),
        "kind": kind,
        "k": int(verification["planted_k"]),
        "groups": groups,
        "cone_rank": len(groups) if kind == "domain_groups" else 1,
        "holds": bool(verification.get("planted_property_holds")),
        "failed_checks": list(verification.get("failed_checks") or []),
    }
