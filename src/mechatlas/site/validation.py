"""The validation page: on each planted organism, the answer training planted beside what every
estimator recovered. Which estimators, and what "recovered" means for each, comes from the experiments
themselves: each registered experiment with a validation maker (``mechatlas.experiments.registry``) turns
a planted organism's verification record and its own record on that organism into rows.

The page exists when the build has planted organisms' verification records
(``data/results/organism/planted/<name>.json``, made by ``make validate``). An organism no experiment has
run on is listed with its measured planted property alone; an estimator that misses is shown missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mechatlas.errors import ArtifactError
from mechatlas.experiments import registry
from mechatlas.markdown import fmt_ci, fmt_estimate, fmt_number, md_code, md_text, table
from mechatlas.records import HEADLINE, planted_answer
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
        if path.name.endswith(HEADLINE):  # the record writer's summary beside each record, not a record
            continue
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


def validated(results: Sequence[Result], name: str) -> list[tuple[Result, registry.Validation]]:
    """The records of experiments with a validation maker (the registry's ``validation``) on the model
    whose source is this planted organism's folder, each with its maker."""
    folder = (PLANTED_FOLDER / name).as_posix()
    found = []
    for result in results:
        entry = registry.find(result.experiment)
        function = entry.validation_function() if entry is not None else None
        if function is not None and (result.provenance.get("model") or {}).get("id") == folder:
            found.append((result, function))
    return found


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_number(value)
    return md_text(value)


def _interval(value: Any, interval: Any) -> str:
    """The interval alone, by ``fmt_ci``'s rule; a row with no recovered value still shows where it lay."""
    first = interval[0] if isinstance(interval, list | tuple) and interval else None
    return fmt_ci({"value": first if value is None else value, "ci95": interval})


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
    lines += ["### Planted answer and what each estimator recovered", ""]
    found = validated(results, answer["name"])
    if not found:
        lines += [
            "The experiments have not run on this organism in this build "
            "(its model key is missing from `models`; `make validate` adds it).",
            "",
        ]
    for result, function in found:
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
                    f"**{row['result']}**" if row["result"] == registry.MISSED else md_text(row["result"]),
                    md_text(row["note"]) if row["note"] else "—",
                ]
                for row in function(planted.record, result.metrics)
            ),
        )
    return lines


def _summary_cell(row: Mapping[str, Any] | None) -> str:
    """A number with its result (`2 (missed)`); a grouping is too long for the summary, so its result alone."""
    if row is None:
        return registry.NOT_MEASURED
    result = f"**{row['result']}**" if row["result"] == registry.MISSED else md_text(row["result"])
    value = row["recovered"]
    if isinstance(value, str) or value is None:
        return result
    return f"{_cell(value)} ({result})"


def validation_page(planted: Sequence[Planted], results: Sequence[Result]) -> str:
    page = VALIDATION_PAGE
    lines = header("Validation on planted organisms")
    lines += [
        "Each planted organism is the default organism fine-tuned so that its refusal runs through a "
        "mechanism we chose: one direction, k redundant directions, or one direction per group of harm "
        "domains. Its planted property is measured before it is used as ground truth, and then every "
        "estimator of the refusal subspace's dimension runs on it through the same stages as on any model. An estimator that "
        "misses the planted answer is shown as missed.",
        "",
        "Spectral and probe counts measure how many directions separate harmful from harmless activations, "
        "which training did not constrain; they are set against the planted causal k to show how far a "
        "representational count is from the causal one.",
        "",
    ]
    rows_of = {
        item.file: [
            row
            for result, f in validated(results, planted_answer(item.record)["name"])
            for row in f(item.record, result.metrics)
        ]
        for item in planted
    }
    estimators = list(dict.fromkeys(row["estimator"] for rows in rows_of.values() for row in rows))
    summary = []
    for item in planted:
        answer = planted_answer(item.record)
        by = {row["estimator"]: row for row in rows_of[item.file]}
        summary.append(
            [
                md_text(answer["name"]),
                str(answer["k"]),
                "holds" if answer["holds"] else "**fails**",
                *(_summary_cell(by.get(e)) for e in estimators),
            ]
        )
    lines += table(["organism", "planted k", "planted property", *(md_text(e) for e in estimators)], summary)
    for item in planted:
        lines += _section(item, results, page)
    return "\n".join(lines)
