"""The links from results to the literature, read from ``data/results/<experiment>/<model>/metrics.json``.

Every result record names the paper claims it addresses (``replicates: [{paper, claim, verdict}]``)
and the taxonomy methods it uses (``methods: [ids]``). This module reads just those links, with the
line of each, so the referee can check that they resolve and the site can show, on every paper page,
which of our results replicate which claim (``replications_from_results``).

A missing results directory means no results yet (a fresh clone before ``dvc pull``), not an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mechatlas.errors import LiteratureError
from mechatlas.literature.located import LocatedDict, LocatedList, line_at, load_json
from mechatlas.literature.problems import Problem, sort_problems
from mechatlas.records import Verdict

METRICS_NAME = "metrics.json"


@dataclass(frozen=True)
class ResultReplication:
    """One result's verdict on one paper claim; ``evidence`` is the metrics.json that holds the numbers."""

    paper: str
    claim: str
    experiment: str
    model: str
    verdict: Verdict
    evidence: Path
    line: int = 1


@dataclass(frozen=True)
class ResultRecord:
    """The literature links of one result record, with the line of each method id."""

    experiment: str
    model: str
    path: Path
    file: str
    replicates: tuple[ResultReplication, ...]
    methods: tuple[tuple[str, int], ...]


def read_results(results_root: Path, display: str | None = None) -> tuple[list[ResultRecord], list[Problem]]:
    """Read the links of every ``<experiment>/<model>/metrics.json`` under ``results_root``."""
    shown = display or str(results_root)
    if not results_root.is_dir():
        return [], []
    records: list[ResultRecord] = []
    problems: list[Problem] = []
    for path in sorted(results_root.glob(f"*/*/{METRICS_NAME}")):
        experiment, model = path.parent.parent.name, path.parent.name
        file = f"{shown}/{experiment}/{model}/{METRICS_NAME}"
        record, record_problems = read_result(path, file, experiment, model)
        problems.extend(record_problems)
        if record is not None:
            records.append(record)
    return records, problems


def read_result(
    path: Path, file: str, experiment: str, model: str
) -> tuple[ResultRecord | None, list[Problem]]:
    """Read one metrics.json; every malformed link is a problem at its line."""
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return None, [
            Problem(
                file,
                error.lineno,
                f"invalid JSON: {error.msg}",
                f"rerun the stage that writes {METRICS_NAME}",
            )
        ]
    if not isinstance(data, LocatedDict):
        return None, [
            Problem(file, 1, "a result record must be a JSON object", "write the record as `{...}`")
        ]
    problems: list[Problem] = []
    replicates = _list_field(
        data, "replicates", file, problems, "`replicates: []` (a list of {paper, claim, verdict})"
    )
    methods = _list_field(data, "methods", file, problems, "`methods: []` (a list of taxonomy ids)")

    links: list[ResultReplication] = []
    for index, item in enumerate(replicates):
        line = replicates.item_lines[index] if isinstance(replicates, LocatedList) else data.line
        link = _read_link(item, index, line, file, problems, path, experiment, model)
        if link is not None:
            links.append(link)
    method_ids: list[tuple[str, int]] = []
    for index, method in enumerate(methods):
        line = line_at(data, ("methods", index))
        if isinstance(method, str) and method:
            method_ids.append((method, line))
        else:
            problems.append(
                Problem(file, line, f"`methods.{index}` is {method!r}", "write a taxonomy id (a string)")
            )
    return ResultRecord(experiment, model, path, file, tuple(links), tuple(method_ids)), problems


def _list_field(data: LocatedDict, name: str, file: str, problems: list[Problem], shape: str) -> list[Any]:
    if name not in data:
        problems.append(
            Problem(file, data.line, f"the record has no `{name}`", f"add {shape}; an empty list is fine")
        )
        return []
    value = data[name]
    if not isinstance(value, list):
        problems.append(Problem(file, line_at(data, (name,)), f"`{name}` is not a list", f"write {shape}"))
        return []
    return value


def _read_link(
    item: Any,
    index: int,
    line: int,
    file: str,
    problems: list[Problem],
    path: Path,
    experiment: str,
    model: str,
) -> ResultReplication | None:
    where = f"replicates.{index}"
    if not isinstance(item, dict):
        problems.append(
            Problem(file, line, f"`{where}` is not an object", 'write {"paper", "claim", "verdict"}')
        )
        return None
    missing = [name for name in ("paper", "claim", "verdict") if not isinstance(item.get(name), str)]
    if missing:
        problems.append(
            Problem(
                file,
                line,
                f"`{where}` has no {', '.join(missing)} (or not as text)",
                'give each entry "paper" (bib key), "claim" (claim id) and "verdict"',
            )
        )
        return None
    verdict = Verdict.parse(item["verdict"])
    if verdict is None:
        problems.append(
            Problem(
                file,
                line_at(item, ("verdict",)),
                f"`{where}.verdict` is {item['verdict']!r}",
                f"use one of {', '.join(f'`{v.value}`' for v in Verdict)}",
            )
        )
        return None
    return ResultReplication(
        paper=item["paper"],
        claim=item["claim"],
        experiment=experiment,
        model=model,
        verdict=verdict,
        evidence=path,
        line=line_at(item, ("paper",)),
    )


def replications_from_results(
    results_root: str | Path = "data/results",
) -> dict[str, list[ResultReplication]]:
    """Every result's verdicts, grouped by paper key, in (experiment, model, claim) order.

    Raises ``LiteratureError`` listing every malformed record; run ``mechatlas lit check`` for the
    full referee, which also checks that each paper and claim exists.
    """
    records, problems = read_results(Path(results_root))
    if problems:
        raise LiteratureError(
            "malformed result records:\n" + "\n".join(str(problem) for problem in sort_problems(problems))
        )
    grouped: dict[str, list[ResultReplication]] = {}
    for record in records:
        for link in record.replicates:
            grouped.setdefault(link.paper, []).append(link)
    for links in grouped.values():
        links.sort(key=lambda link: (link.experiment, link.model, link.claim))
    return grouped
