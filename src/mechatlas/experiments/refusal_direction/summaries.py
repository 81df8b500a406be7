"""The numbers of the refusal-direction result record, with their confidence intervals.

Arditi et al. 2024 (arXiv 2406.11717) report refusal and safety scores under directional ablation
and activation addition (Section 3) and the capability cost of the orthogonalized model (Section 4).
Here every refusal rate carries a 95% CI per judge, condition and label (overall and per domain), over
the right unit: whole clusters of prompts (the organism's framings) where prompts come in clusters, Wilson
per prompt otherwise; refusal scores and the cross-entropy/KL costs on harmless completions carry percentile
bootstrap CIs; ``result_metrics`` puts them together as the ``metrics`` of ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mechatlas.stats import bootstrap_ci, rate_over_unit


def mean_with_ci(
    values: Sequence[float] | np.ndarray | pd.Series, *, resamples: int, seed: int
) -> dict[str, Any]:
    """Mean, n and percentile-bootstrap 95% CI of the finite values."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    low, high = bootstrap_ci(data, n_resamples=resamples, seed=seed)
    return {
        "value": float(data.mean()) if len(data) else None,
        "n": len(data),
        "ci95": [low, high] if len(data) else [None, None],
        "ci_method": "bootstrap",
    }


def summarize(
    evaluations: pd.DataFrame,
    capability: pd.DataFrame,
    *,
    judges: Sequence[str],
    resamples: int,
    seed: int,
    clusters: Mapping[str, str] | None = None,
    cluster_unit: str | None = None,
) -> dict[str, Any]:
    """Refusal rates per judge, condition and label, overall and per domain; refusal scores and capability
    costs with bootstrap CIs. ``judges`` are the ``refused_<judge>`` column suffixes. Rate intervals
    resample ``clusters`` (prompt id -> cluster) where given, else are per-prompt Wilson intervals;
    ``interval_unit`` records which."""

    def rate_of(group: pd.DataFrame, column: str) -> dict[str, Any]:
        units = None if clusters is None else [clusters[i] for i in group["id"]]
        return rate_over_unit(group[column].astype(bool).tolist(), units, n_resamples=resamples, seed=seed)

    out: dict[str, Any] = {"refusal_rate": {}, "refusal_rate_per_domain": {}, "refusal_score": {}}
    out["interval_unit"] = (
        f"{cluster_unit} (cluster bootstrap over whole clusters)"
        if clusters is not None
        else "prompt (Wilson)"
    )
    out["refusal_score_per_domain"] = {}
    for judge in judges:
        column = f"refused_{judge}"
        out["refusal_rate"][judge] = {}
        out["refusal_rate_per_domain"][judge] = {}
        for (condition, label), group in evaluations.groupby(["condition", "label"], sort=False):
            out["refusal_rate"][judge].setdefault(condition, {})[label] = rate_of(group, column)
            out["refusal_rate_per_domain"][judge].setdefault(condition, {})[label] = {
                domain: rate_of(g, column) for domain, g in sorted(group.groupby("domain"))
            }
    for (condition, label), group in evaluations.groupby(["condition", "label"], sort=False):
        out["refusal_score"].setdefault(condition, {})[label] = mean_with_ci(
            group["refusal_score"], resamples=resamples, seed=seed
        )
        out["refusal_score_per_domain"].setdefault(condition, {})[label] = {
            domain: mean_with_ci(g["refusal_score"], resamples=resamples, seed=seed)
            for domain, g in sorted(group.groupby("domain"))
        }
    out["capability"] = _capability_summary(capability, resamples=resamples, seed=seed)
    return out


def _capability_summary(capability: pd.DataFrame, *, resamples: int, seed: int) -> dict[str, Any]:
    if capability.empty:
        return {}
    wide = capability.pivot(index="prompt_index", columns="condition", values=["ce", "kl"])
    summary: dict[str, Any] = {}
    for condition in capability["condition"].unique():
        ce, kl = wide["ce"][condition], wide["kl"][condition]
        summary[condition] = {
            "ce": mean_with_ci(ce, resamples=resamples, seed=seed),
            "delta_ce": mean_with_ci(ce - wide["ce"]["baseline"], resamples=resamples, seed=seed),
            "kl": mean_with_ci(kl, resamples=resamples, seed=seed),
        }
    return summary


#: What each judge's ``refused_<judge>`` column means, as written into ``metrics.json``.
JUDGES = {
    "substring": "reply contains any of refusal_direction.refusal_substrings (case-insensitive)",
    "logit": "refusal score (log-odds of the refusal tokens at the first reply position) > 0",
}


#: The ``direction.json`` fields ``metrics.json`` repeats under ``selected_direction``.
SELECTED_FIELDS = (
    "position",
    "token",
    "layer",
    "hook",
    "norm",
    "bypass_score",
    "induce_score",
    "kl_score",
    "passed_filters",
    "relaxed_filters",
)


def counts_of_test_prompts(evaluations: pd.DataFrame) -> dict[str, int]:
    """How many test prompts of each label were evaluated (rows of the baseline condition)."""
    return {
        label: int((evaluations["condition"].eq("baseline") & evaluations["label"].eq(label)).sum())
        for label in ("harmful", "harmless")
    }


def result_metrics(
    *,
    experiment: str,
    info: Mapping[str, Any],
    evaluations: pd.DataFrame,
    summary: Mapping[str, Any],
    conditions: Sequence[Any],
    control: Mapping[str, Any],
    classifier: str | None,
    verdict_judge: str,
    orthogonalization: Mapping[str, Any],
    max_new_tokens: int,
    addition_coefficient: float,
    verdict_rules: Mapping[str, str],
) -> dict[str, Any]:
    """The ``metrics`` part of the result record: counts, the selection, conditions, judges and summaries."""
    counts = {
        "train": info["n_train"],
        "val": info["n_val"],
        "test": counts_of_test_prompts(evaluations),
        "candidates": info["n_candidates"],
    }
    return {
        "experiment": experiment,
        "n": counts,
        "selected_direction": {k: info[k] for k in SELECTED_FIELDS},
        "random_control": dict(control),
        "conditions": {
            c.name: {"direction": c.direction, "harmful": c.harmful[0], "harmless": c.harmless[0]}
            for c in conditions
        },
        "judges": {**JUDGES, **({"classifier": classifier} if classifier is not None else {})},
        "verdict_judge": verdict_judge,
        **summary,
        "orthogonalization": orthogonalization,
        "max_new_tokens": max_new_tokens,
        "addition_coefficient": addition_coefficient,
        "verdict_rules": verdict_rules,
    }
