"""Directions per harm domain and projections onto them, with AUCs.

``domain_directions`` and ``leave_one_out_directions`` give one difference-in-means direction per domain
(against all harmless prompts, or against the other domains); ``projection_summary`` and
``relative_position`` say where prompts fall along a direction; ``auc``/``auc_with_ci`` measure how well
a projection separates two sets (Zhao et al., arXiv 2507.11878, compare harmfulness and refusal so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.geometry.subspaces import _float64, _index
from mechatlas.stats import percentile_ci

# --- domain geometry -----------------------------------------------------------------------------


def domain_directions(
    harmful: Float[Tensor, "n_harmful d_model"],
    domains: Sequence[str],
    harmless_mean: Float[Tensor, " d_model"],
) -> dict[str, Float[Tensor, " d_model"]]:
    """Difference in means per harm domain: ``μ(harmful in domain) - μ(harmless)``, in float64."""
    h = _float64(harmful)
    labels = np.asarray(domains)
    return {
        domain: h[_index(np.flatnonzero(labels == domain))].mean(dim=0) - _float64(harmless_mean)
        for domain in sorted(set(domains))
    }


def leave_one_out_directions(
    harmful: Float[Tensor, "n_harmful d_model"],
    domains: Sequence[str],
    harmless_mean: Float[Tensor, " d_model"],
) -> dict[str, Float[Tensor, " d_model"]]:
    """For each domain, the difference in means from the harmful prompts of every *other* domain."""
    h = _float64(harmful)
    labels = np.asarray(domains)
    return {
        domain: h[_index(np.flatnonzero(labels != domain))].mean(dim=0) - _float64(harmless_mean)
        for domain in sorted(set(domains))
    }


def projection_summary(
    activations: Float[Tensor, "n d_model"],
    direction: Float[Tensor, " d_model"],
    *,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """Mean scalar projection of rows onto the unit ``direction``, with n and a bootstrap CI."""
    unit = _float64(direction) / _float64(direction).norm().clamp(min=1e-30)
    values = (_float64(activations) @ unit).numpy()
    if len(values) == 0:
        return {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0, "values": values}
    rng = np.random.default_rng(seed)
    means = np.array([values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_bootstrap)])
    return {
        "mean": float(values.mean()),
        "ci95": list(percentile_ci(means)),
        "n": len(values),
        "values": values,
    }


def relative_position(
    probe_values: np.ndarray, low_values: np.ndarray, high_values: np.ndarray, *, n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """Where ``probe`` rows sit between the ``low`` and ``high`` group means on one axis (0 = low, 1 = high).

    Used for the over-refusal controls: alarming-but-harmless prompts between harmless (0) and harmful
    (1). The CI resamples all three groups.
    """

    def position(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
        span = hi.mean() - lo.mean()
        return float((p.mean() - lo.mean()) / span) if abs(span) > 1e-12 else math.nan

    if min(len(probe_values), len(low_values), len(high_values)) == 0:
        return {
            "value": math.nan,
            "ci95": [math.nan, math.nan],
            "n": [len(probe_values), len(low_values), len(high_values)],
        }
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        draws.append(
            position(
                probe_values[rng.integers(0, len(probe_values), len(probe_values))],
                low_values[rng.integers(0, len(low_values), len(low_values))],
                high_values[rng.integers(0, len(high_values), len(high_values))],
            )
        )
    finite = np.array([d for d in draws if np.isfinite(d)])
    return {
        "value": position(probe_values, low_values, high_values),
        "ci95": list(percentile_ci(finite)),
        "n": [len(probe_values), len(low_values), len(high_values)],
    }


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of scores separating ``positive`` from ``negative``: the share of
    (positive, negative) pairs ordered correctly, ties counting one half (the Mann-Whitney statistic)."""
    if len(positive) == 0 or len(negative) == 0:
        return math.nan
    p, n = np.asarray(positive, dtype=np.float64)[:, None], np.asarray(negative, dtype=np.float64)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def auc_with_ci(positive: np.ndarray, negative: np.ndarray, *, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """``auc`` with a percentile-bootstrap CI resampling both groups, and the group sizes."""
    rng = np.random.default_rng(seed)
    draws = [
        auc(
            positive[rng.integers(0, len(positive), len(positive))],
            negative[rng.integers(0, len(negative), len(negative))],
        )
        for _ in range(n_bootstrap if len(positive) and len(negative) else 0)
    ]
    return {
        "value": auc(positive, negative),
        "ci95": list(percentile_ci(np.array(draws))),
        "n": [len(positive), len(negative)],
    }
