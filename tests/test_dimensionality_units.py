"""The dimensionality study's intervals resample the right unit, and its domain rule has a fair null.

Organism prompts are a task wrapped in a framing, and prompts sharing a framing fail together. A planted
case whose framings move their prompts together must get wider intervals over framings than over prompts,
and the verdict must read the framing interval. The domain rule's criterion (a) compares the between-domain
cosine with a permutation null (domain labels permuted within framings, through the same estimator): it
must find domains with directions of their own, and must not find them where one shared direction plus
noise (or plus framing effects) is all there is.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from mechatlas.config import DimensionalitySettings, validate_params
from mechatlas.experiments.common import PromptClusters, json_safe
from mechatlas.experiments.dimensionality.domains import NULL_ALPHA, _between_domain_null, domain_geometry
from mechatlas.experiments.dimensionality.harmfulness import harmfulness_versus_refusal
from mechatlas.experiments.dimensionality.resampling import GroupClusters, grouped_bootstrap
from mechatlas.experiments.dimensionality.verdicts import (
    domain_dependent_directions,
    harmfulness_distinct_from_refusal,
)

SETTINGS = DimensionalitySettings(n_permutations=200, n_bootstrap=200, seed=0)
D = 8


def _width(stat: dict[str, Any]) -> float:
    return float(stat["ci95"][1] - stat["ci95"][0])


# --- the unit of the harmfulness intervals ------------------------------------------------------------


def _framed(
    rng: np.random.Generator, mean: torch.Tensor, axis: torch.Tensor, signs: list[int], tau: float, per: int
) -> tuple[torch.Tensor, list[str]]:
    """``per`` prompts in each framing; framing f shifts all of its prompts by ``signs[f]·tau`` along
    ``axis`` (the signs sum to zero, so the framings move the means' spread, not the means)."""
    rows, names = [], []
    for f, sign in enumerate(signs):
        noise = torch.from_numpy(rng.standard_normal((per, D))) * 0.5
        rows.append(mean[None] + sign * tau * axis[None] + noise)
        names += [f"framing-{f}"] * per
    return torch.cat(rows), names


def _harmfulness_case(tau: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], GroupClusters]:
    """Harmful and harmless prompts (6 train and 6 val framings each) and alarming controls (6 framings),
    40 prompts a framing. The harmfulness direction (instruction token) is e0, the refusal direction
    (post-instruction) e1; the controls sit 0.3 of the way to harmful on the first and 0.6 on the second.
    Framings shift their prompts by ±tau along the direction read at each position."""
    rng = np.random.default_rng(0)
    eye = torch.eye(D, dtype=torch.float64)
    a = 4.0
    acts: dict[str, dict[str, torch.Tensor]] = {"instruction": {}, "post": {}}
    names: dict[str, list[str]] = {}
    patterns = {"instruction": [1, -1, 1, -1, 1, -1], "post": [1, 1, -1, -1, 1, -1]}
    for position, axis in (("instruction", eye[0]), ("post", eye[1])):
        for label, scale in (("harmful", 1.0), ("harmless", 0.0)):
            train, train_names = _framed(rng, scale * a * axis, axis, patterns[position], tau, 40)
            val, val_names = _framed(rng, scale * a * axis, axis, patterns[position][::-1], tau, 40)
            acts[position][label] = torch.cat([train, val])
            names[label] = [f"train-{n}" for n in train_names] + [f"val-{n}" for n in val_names]
        share = 0.3 if position == "instruction" else 0.6
        acts[position]["alarming"], names["alarming"] = _framed(
            rng, share * a * axis, axis, patterns[position], tau, 40
        )
    fit_rows = {label: np.arange(240) for label in ("harmful", "harmless")}
    return acts["instruction"], acts["post"], fit_rows, GroupClusters(names, "organism framing")


def _versus(tau: float, *, clustered: bool) -> dict[str, Any]:
    inst, post, fit_rows, clusters = _harmfulness_case(tau)
    refused = np.arange(240) % 2 == 0
    out, _ = harmfulness_versus_refusal(
        inst, post, fit_rows, refused, SETTINGS, clusters if clustered else None
    )
    return json.loads(json.dumps(json_safe(out)))


def _distinct(versus: dict[str, Any]) -> str:
    geo = {"selected": {"layer": 0}, "harmfulness_vs_refusal": {"0": versus}}
    causal = {
        "baseline": {"harmful": {"value": 1.0}},
        "sweeps": {"0": {"spectral": {}}},
        "harmfulness": {"rates": {}},
    }
    return harmfulness_distinct_from_refusal(geo, causal, SETTINGS)[0]


def test_framings_that_move_their_prompts_together_widen_every_harmfulness_interval() -> None:
    """Planted: each framing shifts its 40 prompts along the direction read (±2, summing to zero). Over
    framings the intervals are several times wider than over prompts; the estimates are the same."""
    by_prompt, by_framing = _versus(2.0, clustered=False), _versus(2.0, clustered=True)
    pairs = [
        (by_prompt["alarming_position_difference"], by_framing["alarming_position_difference"]),
        *(
            (by_prompt[name][key], by_framing[name][key])
            for name in ("instruction", "post_instruction")
            for key in ("harmful_vs_harmless_auc", "alarming_relative_position")
        ),
        (
            by_prompt["instruction"]["projection"]["alarming"],
            by_framing["instruction"]["projection"]["alarming"],
        ),
    ]
    for prompt_stat, framing_stat in pairs:
        assert prompt_stat.get("value", prompt_stat.get("mean")) == framing_stat.get(
            "value", framing_stat.get("mean")
        )
        assert prompt_stat["interval_unit"] == "prompt"
        assert framing_stat["interval_unit"] == "cluster (organism framing) within group"
        assert _width(framing_stat) > 2 * _width(prompt_stat), (prompt_stat, framing_stat)
    assert by_framing["alarming_position_difference"]["n_clusters"] == [6, 6, 6, 6, 6]
    assert by_framing["cosine"]["interval_unit"].startswith("cluster (organism framing)")


def test_without_framing_effects_the_framing_interval_is_no_wider() -> None:
    """The control: with no framing effect (tau = 0) resampling framings of 40 independent prompts gives
    about the per-prompt interval, so the widening above comes from the framings, not from the method."""
    by_prompt, by_framing = _versus(0.0, clustered=False), _versus(0.0, clustered=True)
    stat = "alarming_position_difference"
    assert _width(by_framing[stat]) < 1.6 * _width(by_prompt[stat])


def test_the_distinct_harmfulness_verdict_reads_the_interval_over_framings() -> None:
    """The controls sit 0.3 closer to harmless on the harmfulness direction. Over prompts that difference
    has a CI below zero and the claim is replicated; over framings, which here carry most of the spread,
    the CI reaches zero and only the cosine criterion holds."""
    by_prompt, by_framing = _versus(2.0, clustered=False), _versus(2.0, clustered=True)
    assert by_prompt["alarming_position_difference"]["value"] == pytest.approx(-0.3, abs=0.05)
    assert (
        by_prompt["alarming_position_difference"]["ci95"][1]
        < 0
        < by_framing["alarming_position_difference"]["ci95"][1]
    )
    assert _distinct(by_prompt) == "replicated"
    assert _distinct(by_framing) == "partially"
    geo = {"selected": {"layer": 0}, "harmfulness_vs_refusal": {"0": by_framing}}
    causal = {
        "baseline": {"harmful": {"value": 1.0}},
        "sweeps": {"0": {"spectral": {}}},
        "harmfulness": {"rates": {}},
    }
    reason = harmfulness_distinct_from_refusal(geo, causal, SETTINGS)[1]
    assert "over cluster (organism framing) within group" in reason and "{" not in reason


def test_the_geometry_stage_hands_every_groups_framings_to_the_analyses(
    monkeypatch: pytest.MonkeyPatch, tiny_params_dict: dict[str, Any]
) -> None:
    """``_fit_clusters`` maps each saved row of the harmful, harmless and alarming groups to its framing,
    in row order, and names the unit."""
    import pandas as pd

    from mechatlas.experiments.dimensionality import stages
    from mechatlas.experiments.dimensionality.groups import PromptGroups

    frame = {
        label: pd.DataFrame({"id": [f"{label}-{i}" for i in range(3)]})
        for label in ("harmful", "harmless", "alarming")
    }
    groups = PromptGroups(frame["harmful"], frame["harmless"], frame["alarming"], {})
    framing = {f"{label}-{i}": f"{label[0]}{2 - i}" for label in frame for i in range(3)}

    class Record:
        def __init__(self, id: str) -> None:
            self.id = id

    monkeypatch.setattr("mechatlas.experiments.common.model_spec", lambda params, name: None)
    monkeypatch.setattr(
        "mechatlas.experiments.common.load_prompts", lambda params, spec: [Record(i) for i in framing]
    )
    monkeypatch.setattr(
        "mechatlas.experiments.common.prompt_clusters",
        lambda records, spec: PromptClusters({r.id: framing[r.id] for r in records}, "organism framing"),
    )
    found = stages._fit_clusters(validate_params(tiny_params_dict), "organism", groups)
    assert found is not None and found.unit == "organism framing"
    assert dict(found.of) == {label: [f"{label[0]}2", f"{label[0]}1", f"{label[0]}0"] for label in frame}


def test_a_grouped_bootstrap_without_clusters_resamples_prompts() -> None:
    out = grouped_bootstrap([np.arange(10.0)], None, lambda g: float(g[0].mean()), n_resamples=50, seed=0)
    assert out["interval_unit"] == "prompt" and out["n"] == [10] and out["ci95"][0] < 4.5 < out["ci95"][1]


# --- criterion (a) of the domain rule: a permutation null of the between-domain cosine -----------------


def _domains(
    kind: str, seed: int, *, per: int = 24, n_domains: int = 4, d: int = 16
) -> tuple[torch.Tensor, list[str], torch.Tensor, list[str]]:
    """Harmful prompts of ``n_domains`` domains, harmless prompts, and each harmful prompt's framing.

    ``distinct``: domain i's mean is 3·(r + s_i)/√2 (a shared refusal direction r and a direction s_i of its
    own; true between-domain cosine 0.5). ``shared``: every domain's mean is 3·r. ``shared, framed``: as
    ``shared``, but the prompts come in 4 framings that each shift their prompts along a direction of their
    own, and each domain draws most of its prompts from one framing (the domains' means then differ through
    their framings, not through directions of their own).
    """
    rng = np.random.default_rng(seed)
    eye = torch.eye(d, dtype=torch.float64)
    r = eye[0]
    harmful, domains, framings = [], [], []
    for i in range(n_domains):
        mean = 3 * (r + eye[1 + i]) / 2**0.5 if kind == "distinct" else 3 * r
        for j in range(per):
            f = i % 4 if (kind == "shared, framed" and j < per * 3 // 4) else j % 4
            shift = 1.5 * eye[8 + f] if kind == "shared, framed" else 0 * r
            harmful.append(mean + shift + torch.from_numpy(rng.standard_normal(d)))
            domains.append(f"d{i}")
            framings.append(f"framing-{f}")
    harmless = torch.from_numpy(rng.standard_normal((3 * per, d)))
    return torch.stack(harmful), domains, harmless, framings


def _null(kind: str, seed: int, *, within_framings: bool = True) -> dict[str, Any]:
    harmful, domains, harmless, framings = _domains(kind, seed)
    index = np.searchsorted(sorted(set(domains)), domains)
    return _between_domain_null(
        harmful,
        index,
        harmless,
        framings if within_framings else None,
        n_domains=4,
        n_permutations=200,
        seed=seed,
    )


def _measurable(null: dict[str, Any]) -> bool:
    return null["observed"] < null["threshold"]


def test_the_between_domain_null_finds_distinct_domain_directions() -> None:
    """Planted positive, over ten independent data sets: every one is below its null's 5th percentile."""
    nulls = [_null("distinct", seed) for seed in range(10)]
    assert all(_measurable(n) for n in nulls), [(n["observed"], n["threshold"]) for n in nulls]
    assert all(n["p_value"] <= NULL_ALPHA for n in nulls)


def test_the_between_domain_null_holds_its_level_on_one_shared_direction() -> None:
    """Planted negative, over forty independent data sets: one shared direction plus noise is below the
    null's 5th percentile about 5% of the time (at most 5 of 40 here), and its p-values spread over (0, 1]."""
    nulls = [_null("shared", seed) for seed in range(40)]
    assert sum(_measurable(n) for n in nulls) <= 5
    assert 0.3 < float(np.median([n["p_value"] for n in nulls])) < 0.7


def test_permuting_within_framings_keeps_framing_effects_from_passing_for_domain_directions() -> None:
    """Planted negative with framing effects: domains share one direction but draw most of their prompts
    from different framings. Labels permuted within framings keep that, and the null is not rejected;
    labels permuted over all prompts do not, and would call the framings domain directions."""
    within = [_null("shared, framed", seed) for seed in range(10)]
    anywhere = [_null("shared, framed", seed, within_framings=False) for seed in range(10)]
    assert sum(_measurable(n) for n in within) <= 2
    assert all(_measurable(n) for n in anywhere)
    assert within[0]["scheme"] == "domain labels permuted among the harmful prompts of each cluster"


def _causal(*, transfer_ok: bool) -> dict[str, Any]:
    gap = {
        "value": 0.5,
        "ci95": [0.3, 0.7] if transfer_ok else [-0.1, 0.1],
        "interval_unit": "clusters within domains",
    }
    gap["permutation"] = {"p_value": 0.01 if transfer_ok else 0.5, "n": 100}
    return {
        "baseline": {"harmful": {"value": 1.0}},
        "sweeps": {"0": {"spectral": {}}},
        "transfer": {"gap": gap, "null_gap": {"p95": 0.1, "n_draws": 8}},
        "lodo": {},
    }


def test_the_domain_rule_reads_the_null_distinct_directions_pass_and_one_shared_direction_fails() -> None:
    """The rule's criterion (a) on ``domain_geometry``'s record: with the causal criterion (b) held fixed,
    distinct directions are replicated (or partially, without (b)); one shared direction is partially
    (or not replicated, without (b))."""
    verdicts = {}
    for kind in ("distinct", "shared"):
        harmful, domains, harmless, framings = _domains(kind, 0)
        summary, _ = domain_geometry(
            harmful,
            domains,
            harmless,
            SETTINGS,
            (framings, [f"framing-{j % 4}" for j in range(len(harmless))]),
        )
        geo = {"selected": {"layer": 0}, "domains": {"0": json.loads(json.dumps(json_safe(summary)))}}
        for ok in (True, False):
            verdicts[kind, ok], reason = domain_dependent_directions(geo, _causal(transfer_ok=ok), SETTINGS)
        assert (
            "5th percentile of its permutation null (200 permutations, domain labels permuted among the harmful prompts of each cluster;"
            in reason
        )
        assert (
            f"bias-corrected {summary['mean_off_diagonal_cosine']['value']:.4f}" in reason
            and "{" not in reason
        )
    assert verdicts == {
        ("distinct", True): "replicated",
        ("distinct", False): "partially",
        ("shared", True): "partially",
        ("shared", False): "not replicated",
    }


def test_the_findings_state_the_null_and_the_unit_they_compare_against() -> None:
    from mechatlas.experiments.dimensionality.headline import dimensionality_findings

    rate = {"value": 0.5, "ci95": [0.4, 0.6], "n": 80, "ci_method": "cluster bootstrap"}
    unit = "cluster (organism framing) within group"
    record = {
        "dimensionality": {"table": []},
        "causal": {
            "selected_layer": 0,
            "harmfulness": {
                "rates": {
                    "ablate": {"instruction": {"harmful": rate}},
                    "add": {"instruction": {"harmless": rate}, "post_instruction": {"harmless": rate}},
                }
            },
        },
        "domains": {
            "0": {
                "domains": ["a", "b"],
                "mean_off_diagonal_cosine": {"value": 0.9, "ci95": [0.85, 0.95], "plug_in": 0.88},
                "between_domain_null": {
                    "observed": 0.88,
                    "threshold": 0.93,
                    "n_permutations": 100,
                    "p_value": 0.01,
                },
            }
        },
        "harmfulness_vs_refusal": {
            "0": {"cosine": {"value": 0.3, "ci95": [0.2, 0.4], "interval_unit": unit}}
        },
    }
    domains, versus = dimensionality_findings(record)
    assert (
        "0.88 against 0.93, the 5th percentile of the same cosine when the domain labels are permuted"
        in domains
    )
    assert f"(95% CI resampling by {unit})" in versus
