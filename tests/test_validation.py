"""The validation table: planted answers against what each estimator recovers, and the page that shows it.

Every row's rule has a planted case where it comes out "recovered" and one where it comes out "missed".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mechatlas.experiments.dimensionality.validation import HIT, MISS, NOT_RUN, validation_rows
from mechatlas.site.records import Result
from mechatlas.site.validation import Planted, read_planted, validation_page

DOMAINS = ["biohazard", "cybercrime", "drugs", "fraud", "harassment", "privacy", "violence", "weapons"]
GROUPS = [["biohazard", "weapons"], ["cybercrime", "fraud"], ["drugs", "violence"], ["harassment", "privacy"]]


def rate(value: float, high: float | None = None) -> dict[str, Any]:
    return {
        "value": value,
        "ci95": [max(value - 0.02, 0.0), high if high is not None else min(value + 0.02, 1)],
        "n": 20,
    }


def verification(
    kind: str, k: int, groups: list[list[str]] | None = None, holds: bool = True
) -> dict[str, Any]:
    check = {
        "condition": "planted",
        "expect": "removed",
        "value": 0.0,
        "ci95": [0.0, 0.01],
        "ci95_framings": [0.0, 0.0],
        "n": 400,
        "holds": True,
    }
    return {
        "name": kind,
        "kind": kind,
        "planted_k": k,
        "groups": groups,
        "checks": [check],
        "planted_property_holds": holds,
        "failed_checks": [] if holds else ["bypass k=1 (constrained)"],
    }


def transfer(removes: set[tuple[str, str]]) -> dict[str, Any]:
    return {
        "sources": DOMAINS,
        "targets": DOMAINS,
        "rates": [[rate(0.0) if (a, b) in removes else rate(0.95) for b in DOMAINS] for a in DOMAINS],
    }


def metrics(
    *,
    causal_k: int | None,
    m: int | None,
    spectral: float,
    cone: float,
    removes: set[tuple[str, str]],
    probe: float | None = None,
) -> dict[str, Any]:
    probe = spectral if probe is None else probe
    sweep = {"k": causal_k, "ci95": [causal_k, causal_k] if causal_k else [9, 9], "max_k_evaluated": 8}
    return {
        "dimensionality": {
            "selected": {"layer": 5},
            "table": [
                {
                    "estimator": "spectral (parallel analysis)",
                    "layer": 5,
                    "k": spectral,
                    "ci_low": spectral - 1,
                    "ci_high": spectral + 1,
                    "control": "null",
                },
                {
                    "estimator": "probe (INLP)",
                    "layer": 5,
                    "k": probe,
                    "ci_low": probe - 1,
                    "ci_high": probe + 1,
                },
            ],
        },
        "causal": {
            "selected_layer": 5,
            "sweeps": {"5": {"spectral": sweep, "random": {"k": None, "max_k_evaluated": 8}}},
            "cone": {"effective_rank": cone},
            "transfer": transfer(removes),
        },
        "optimised": {
            "bypass": {
                "smallest_m_constrained": m,
                "constrained": [
                    {"m": size, "subspace": {"harmful": rate(0.9 if m is None or size < m else 0.05)}}
                    for size in (1, 2, 3)
                ],
            }
        },
    }


def by_estimator(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {row["estimator"]: row["result"] for row in rows}


EVERYWHERE = {(a, b) for a in DOMAINS for b in DOMAINS}
IN_GROUPS = {(a, b) for g in GROUPS for a in g for b in g}


def test_an_organism_whose_estimators_find_the_planted_answer_is_recovered_on_every_row() -> None:
    rows = by_estimator(
        validation_rows(
            verification("one_direction", 1),
            metrics(causal_k=1, m=1, spectral=1, cone=1.01, removes=EVERYWHERE),
        )
    )
    assert set(rows.values()) == {HIT}


def test_estimators_that_miss_are_shown_missed() -> None:
    rows = by_estimator(
        validation_rows(
            verification("one_direction", 1),
            metrics(causal_k=2, m=3, spectral=23, cone=3.2, removes=IN_GROUPS, probe=8),
        )
    )
    assert set(rows.values()) - {NOT_RUN} == {MISS}
    assert rows["probe (INLP)"] == MISS  # 8 [7, 9] does not contain 1


def test_the_transfer_matrix_recovers_planted_groups_and_misses_one_block() -> None:
    groups = verification("domain_groups", 4, GROUPS)
    found = validation_rows(groups, metrics(causal_k=4, m=None, spectral=4, cone=4.1, removes=IN_GROUPS))
    rows = by_estimator(found)
    assert rows["transfer matrix"] == HIT and rows["cone check"] == HIT
    assert rows["optimised bypass (constrained)"] == NOT_RUN  # searched up to m = 3 < 4: cannot miss
    assert (
        by_estimator(
            validation_rows(groups, metrics(causal_k=4, m=None, spectral=4, cone=1.0, removes=EVERYWHERE))
        )["transfer matrix"]
        == MISS
    )


def test_on_the_redundant_organism_no_single_domain_direction_may_remove_refusal() -> None:
    redundant = verification("redundant", 3)
    none = by_estimator(
        validation_rows(redundant, metrics(causal_k=3, m=3, spectral=3, cone=1.0, removes=set()))
    )
    assert none["transfer matrix"] == HIT and none["causal top-k"] == HIT
    some = by_estimator(
        validation_rows(redundant, metrics(causal_k=1, m=1, spectral=3, cone=1.0, removes=EVERYWHERE))
    )
    assert some["transfer matrix"] == MISS and some["causal top-k"] == MISS


def test_the_page_shows_the_planted_property_and_every_estimator(tmp_path: Path) -> None:
    record = verification("one_direction", 1, holds=False)
    record["checks"][0]["condition"] = "planted <b>"
    folder = tmp_path / "data" / "results" / "organism" / "planted"
    folder.mkdir(parents=True)
    (folder / "one_direction.json").write_text(json.dumps({"metrics": record, "provenance": {}}))
    (folder / "one_direction.headline.json").write_text("{}")  # the record writer's summary: not a record
    planted = read_planted(tmp_path / "data" / "results", tmp_path)
    assert planted == [Planted("data/results/organism/planted/one_direction.json", record)]
    result = Result(
        experiment="dimensionality",
        model="planted_one_direction",
        file="data/results/dimensionality/planted_one_direction/metrics.json",
        metrics=metrics(causal_k=2, m=1, spectral=23, cone=1.0, removes=EVERYWHERE),
        claims=(),
        methods=(),
        provenance={"model": {"id": "data/models/planted/one_direction"}},
        raw="{}",
    )
    page = validation_page(planted, [result])
    assert "planted &#60;b&#62;" in page and "<b>" not in page  # record text is escaped
    assert "the planted property **fails** 1 check(s)" in page
    assert "| causal top-k |" in page and "**missed**" in page
    # once as a column of the summary, once as a row of the organism's own table
    assert page.count("| optimised bypass &#40;constrained&#41; |") == 2
    assert "| one&#95;direction | 1 | **fails** | 2 (**missed**) |" in page
    alone = validation_page(planted, [])
    assert "have not run on this organism" in alone


def test_a_damaged_verification_record_is_refused_naming_the_file(tmp_path: Path) -> None:
    import pytest

    from mechatlas.errors import ArtifactError

    folder = tmp_path / "organism" / "planted"
    folder.mkdir(parents=True)
    (folder / "redundant.json").write_text('{"name": "redundant", "kind"')
    with pytest.raises(
        ArtifactError, match=r"organism/planted/redundant.json: not a readable verification record"
    ):
        read_planted(tmp_path, tmp_path)
