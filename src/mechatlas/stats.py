"""Confidence intervals used across the study.

Rates get Wilson score intervals (exact enough for small n, never outside [0, 1]); other statistics
get percentile bootstrap intervals over prompts, with the seed passed in explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a binomial rate; (nan, nan) when ``n == 0``."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(flags: Sequence[bool]) -> dict[str, float | int | str | list[float]]:
    """A rate with its n and 95% Wilson CI, in the shape every metrics file uses."""
    k, n = int(sum(flags)), len(flags)
    low, high = wilson_interval(k, n)
    return {"value": k / n if n else math.nan, "n": n, "ci95": [low, high], "ci_method": "wilson"}


def percentile_ci(draws: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The central 95% of resampled statistics (2.5th and 97.5th percentiles); NaNs when there are none."""
    data = np.asarray(draws, dtype=np.float64)
    if len(data) == 0:
        return (math.nan, math.nan)
    return (float(np.percentile(data, 2.5)), float(np.percentile(data, 97.5)))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,  # type: ignore[assignment]
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of ``statistic`` over the items of ``values``."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(n_resamples, len(data)))
    return percentile_ci(np.array([statistic(data[row]) for row in idx]))


def cluster_bootstrap_rate(
    flags: Sequence[bool], clusters: Sequence[str], *, n_resamples: int = 2000, seed: int = 0
) -> dict[str, float | int | str | list[float]]:
    """A rate whose 95% CI resamples whole clusters (percentile bootstrap), for items that come in groups.

    When items share a cluster (prompts built from one template, say) they are not independent, and a
    per-item interval such as Wilson's is too narrow. Each resample draws clusters with replacement and
    pools their items.
    """
    if len(flags) != len(clusters):
        raise ValueError(f"{len(flags)} flags but {len(clusters)} cluster labels")
    names, member = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    hits = np.bincount(member, weights=np.asarray(flags, dtype=np.float64), minlength=len(names))
    sizes = np.bincount(member, minlength=len(names))
    n = int(sizes.sum())
    value = float(hits.sum() / n) if n else math.nan

    def pooled(picked: np.ndarray) -> float:
        chosen = picked.astype(np.intp)
        return float(hits[chosen].sum() / sizes[chosen].sum())

    # Fewer than two clusters leave nothing to resample: no interval rather than a zero-width one.
    low, high = (
        bootstrap_ci(np.arange(len(names)), pooled, n_resamples=n_resamples, seed=seed)
        if len(names) >= 2
        else (math.nan, math.nan)
    )
    return {
        "value": value,
        "n": n,
        "clusters": len(names),
        "ci95": [low, high],
        "ci_method": "cluster bootstrap",
    }


def rate_over_unit(
    flags: Sequence[bool], clusters: Sequence[str] | None, *, n_resamples: int = 2000, seed: int = 0
) -> dict[str, float | int | str | list[float]]:
    """A rate with its interval over the right unit: resampling whole clusters where the items come in
    two or more clusters (``cluster_bootstrap_rate``), a per-item Wilson interval otherwise (``rate``).
    ``ci_method`` says which."""
    if clusters is not None and len(set(clusters)) >= 2:
        return cluster_bootstrap_rate(flags, clusters, n_resamples=n_resamples, seed=seed)
    return rate(flags)
