"""DOCSTRING (evaluation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mechatlas.stats import bootstrap_ci, rate

# --- summaries with confidence intervals ----------------------------------------------------------------


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
    evaluations: pd.DataFrame, capability: pd.DataFrame, *, judges: Sequence[str], resamples: int, seed: int
) -> dict[str, Any]:
    """Refusal rates (Wilson CIs) per judge, condition and label, overall and per domain; refusal scores and
    capability costs with bootstrap CIs. ``judges`` are the ``refused_<judge>`` column suffixes."""
    out: dict[str, Any] = {"refusal_rate": {}, "refusal_rate_per_domain": {}, "refusal_score": {}}
    out["refusal_score_per_domain"] = {}
    for judge in judges:
        column = f"refused_{judge}"
        out["refusal_rate"][judge] = {}
        out["refusal_rate_per_domain"][judge] = {}
        for (condition, label), group in evaluations.groupby(["condition", "label"], sort=False):
            out["refusal_rate"][judge].setdefault(condition, {})[label] = rate(
                group[column].astype(bool).tolist()
            )
            out["refusal_rate_per_domain"][judge].setdefault(condition, {})[label] = {
                domain: rate(g[column].astype(bool).tolist()) for domain, g in sorted(group.groupby("domain"))
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
