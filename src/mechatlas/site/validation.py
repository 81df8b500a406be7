"""The validation page: on each planted organism, the answer training planted beside what every
dimensionality estimator recovered (``mechatlas.experiments.dimensionality.validation`` decides both).

The page exists when the build has planted organisms' verification records
(``data/results/organism/planted/<name>.json``, made by ``make validate``). An organism whose
dimensionality record is missing is listed with its measured planted property and "not measured" for
every estimator; an estimator that misses is shown missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mechatlas.errors import ArtifactError
from mechatlas.experiments.dimensionality.validation import MISS, planted_answer, validation_rows
from mechatlas.markdown import fmt_estimate, fmt_number, md_code, md_text, table
from mechatlas.site.context import header, result_ref
from mechatlas.site.records import Result

VALIDATION_PAGE = "generated/results/validation/index.md"
PLANTED_RECORDS = Path("organism") / "planted"
PLANTED_FOLDER = Path("data/models/planted")


@dataclass(frozen=True)
class Planted:
    """A planted organism's verification record, as read from ``data/results/organism/planted/``."""

    file: str
    record: Mapping[str, Any]


def read_planted(results_root: Path, project_root: Path) -> list[Planted]:
    """Every planted organism's verification record, by name; a damaged one is refused, naming the file."""
    found = []
    for path in sorted((results_root / PLANTED_RECORDS).glob("*.json")):
        shown = path.relative_to(project_root).as_posix() if path.is_relative_to(project_root) else str(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ArtifactError(
                f"{shown}: not a readable verification record ({error}); rerun `make validate`"
            ) from None
        body = record.get("metrics") if isinstance(record, dict) else None  # the record writer's layout
        missing = [key for key in ("name", "kind", "planted_k", "checks") if key not in (body or {})]
        if body is None or missing:
            key = f"metrics.{missing[0]}" if missing else "metrics"
            raise ArtifactError(f"{shown}: no `{key}`; rerun `make validate` (the record is incomplete)")
        found.append(Planted(shown, body))
    return found


def dimensionality_result(results: Sequence[Result], name: str) -> Result | None:
    """The dimensionality record of the model whose source is this planted organism's folder."""
    folder = (PLANTED_FOLDER / name).as_posix()
    return next(
        (
            r
            for r in results
            if r.experiment == "dimensionality" and (r.provenance.get("model") or {}).get("id") == folder
        ),
        None,
    )


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_number(value)
    return md_text(value)


def _interval(value: Any, interval: Any) -> str:
    if not isinstance(interval, list | tuple) or len(interval) != 2 or None in interval:
        return "—"
    text = fmt_estimate(value if value is not None else interval[0], list(interval))
    return text[text.index("[") :] if "[" in text else "—"


def _rate(value: Any, ci: Any) -> str:
    return fmt_estimate(value, ci, rate=True) if isinstance(ci, list) else _cell(value)


def _checks(record: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            md_text(check["condition"]),
            md_text(check["expect"]),
            _rate(check["value"], check.get("ci95")),
            _rate(check["value"], check["ci95_framings"]) if check.get("ci95_framings") else "—",
            _cell(check.get("n")),
            "holds" if check["holds"] else "**fails**",
        ]
        for check in record["checks"]
    ]
    return table(
        [
            "condition (ablated at every layer)",
            "expected",
            "harmful refusal, 95% CI (prompts)",
            "95% CI (framings)",
            "n",
            "check",
        ],
        rows,
    )


def _section(planted: Planted, results: Sequence[Result], page: str) -> list[str]:
    answer = planted_answer(planted.record)
    groups = "; ".join("{" + ", ".join(g) + "}" for g in answer["groups"])
    lines = [f"## {md_text(answer['name'])}", ""]
    what = f"Planted: **{md_text(answer['kind'])}**, k = {answer['k']}" + (
        f", groups {md_text(groups)}" if groups else ""
    )
    status = (
        "the planted property **holds** on every check below"
        if answer["holds"]
        else f"the planted property **fails** {len(answer['failed_checks'])} check(s): "
        + md_text(", ".join(answer["failed_checks"]))
        + "; its row below is ground truth only where the checks hold"
    )
    lines += [f"{what}. Measured directly, {status} (record {md_code(planted.file)}).", ""]
    lines += ["### The planted property, measured", "", *_checks(planted.record)]
    result = dimensionality_result(results, answer["name"])
    lines += ["### Planted answer and what each estimator recovered", ""]
    if result is None:
        lines += [
            "The dimensionality stages have not run on this organism in this build "
            "(its model key is missing from `models`; `make validate` adds it).",
            "",
        ]
        return lines
    rows = validation_rows(planted.record, result.metrics)
    lines += [f"From {result_ref(result, page)}.", ""]
    lines += table(
        ["estimator", "what it counts", "planted", "recovered", "95% CI", "result", "controls and notes"],
        (
            [
                md_text(row["estimator"]),
                md_text(row["measures"]),
                _cell(row["planted"]),
                _cell(row["recovered"]),
                _interval(row["recovered"], row["interval"]),
                f"**{row['result']}**" if row["result"] == MISS else md_text(row["result"]),
                md_text(row["note"]) if row["note"] else "—",
            ]
            for row in rows
        ),
    )
    return lines


def validation_page(planted: Sequence[Planted], results: Sequence[Result]) -> str:
    page = VALIDATION_PAGE
    lines = header("Validation on planted organisms")
    lines += [
        "Each planted organism is the default organism fine-tuned so that its refusal runs through a "
        "mechanism we chose: one direction, k redundant directions, or one direction per group of harm "
        "domains. Its planted property is measured before it is used as ground truth, and then every "
        "dimensionality estimator runs on it through the same stages as on any model. An estimator that "
        "misses the planted answer is shown as missed.",
        "",
        "Spectral and probe counts measure how many directions separate harmful from harmless activations, "
        "which training did not constrain; they are set against the planted causal k to show how far a "
        "representational count is from the causal one.",
        "",
    ]
    summary = []
    for item in planted:
        answer = planted_answer(item.record)
        result = dimensionality_result(results, answer["name"])
        rows = validation_rows(item.record, result.metrics) if result is not None else []
        by = {row["estimator"]: row for row in rows}
        summary.append(
            [
                md_text(answer["name"]),
                str(answer["k"]),
                "holds" if answer["holds"] else "**fails**",
                *(
                    (_cell(by[e]["recovered"]) + f" ({by[e]['result']})") if e in by else "not measured"
                    for e in (
                        "causal top-k",
                        "optimised bypass (constrained)",
                        "spectral",
                        "probe (INLP)",
                        "cone check",
                    )
                ),
            ]
        )
    lines += table(
        [
            "organism",
            "planted k",
            "planted property",
            "causal top-k",
            "optimised bypass",
            "spectral",
            "probe",
            "cone rank",
        ],
        summary,
    )
    for item in planted:
        lines += _section(item, results, page)
    return "\n".join(lines)
