"""Confidence intervals used across the study.

Rates get Wilson score intervals (exact enough for small n, never outside [0, 1]); other statistics
get percentile bootstrap intervals over prompts, with the seed passed in explicitly. Where prompts come
in clusters (the organism's framings) and groups (harm domains), ``stratified_cluster_resamples`` draws
whole clusters within each group. A statistic that the resampling itself biases (the cosine of two noisy
directions: every resample adds noise, so the draws sit below the estimate) gets ``basic_bootstrap``: its
bias-corrected estimate and the basic bootstrap interval, which always contains it, in place of a
percentile interval that can miss its own point estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

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


def cluster_bootstrap_mean(
    values: Sequence[float] | np.ndarray, clusters: Sequence[str], *, n_resamples: int = 2000, seed: int = 0
) -> dict[str, float | int | str | list[float]]:
    """The mean of per-item ``values`` with a 95% CI that resamples whole clusters (percentile bootstrap),
    for items that come in groups.

    When items share a cluster (prompts built from one template, say) they are not independent, and a
    per-item interval is too narrow. Each resample draws clusters with replacement and pools their items.
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    names, member = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    sums = np.bincount(member, weights=np.asarray(values, dtype=np.float64), minlength=len(names))
    sizes = np.bincount(member, minlength=len(names))
    n = int(sizes.sum())
    value = float(sums.sum() / n) if n else math.nan

    def pooled(picked: np.ndarray) -> float:
        chosen = picked.astype(np.intp)
        return float(sums[chosen].sum() / sizes[chosen].sum())

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


def cluster_bootstrap_rate(
    flags: Sequence[bool], clusters: Sequence[str], *, n_resamples: int = 2000, seed: int = 0
) -> dict[str, float | int | str | list[float]]:
    """A rate whose 95% CI resamples whole clusters: ``cluster_bootstrap_mean`` of the 0/1 flags."""
    return cluster_bootstrap_mean(
        np.asarray(flags, dtype=np.float64), clusters, n_resamples=n_resamples, seed=seed
    )


def mean_over_unit(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[str] | None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float | int | str | list[float]]:
    """A mean with its interval over the right unit: whole clusters resampled where the items come in two
    or more clusters (``cluster_bootstrap_mean``), items resampled otherwise. ``ci_method`` says which."""
    if clusters is not None and len(set(clusters)) >= 2:
        return cluster_bootstrap_mean(values, clusters, n_resamples=n_resamples, seed=seed)
    data = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(data, n_resamples=n_resamples, seed=seed)
    return {
        "value": float(data.mean()) if len(data) else math.nan,
        "n": len(data),
        "ci95": [low, high],
        "ci_method": "bootstrap over items",
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


def stratified_cluster_resamples(
    strata: Sequence[Hashable],
    clusters: Sequence[Hashable] | None,
    *,
    n_resamples: int,
    seed: int,
) -> list[np.ndarray]:
    """Bootstrap resamples of item indices that keep every stratum and resample whole clusters within it.

    Items are grouped by ``strata`` (harm domains, say); within each stratum the clusters present there
    (framings) are drawn with replacement, as many as the stratum has, and each drawn cluster brings all of
    its items in that stratum. With ``clusters`` None, or a stratum holding a single cluster, that
    stratum's items are drawn one by one instead. Every resample keeps every stratum non-empty.

    >>> [sorted(r.tolist()) for r in stratified_cluster_resamples("aab", "xyz", n_resamples=2, seed=0)]
    [[1, 1, 2], [0, 1, 2]]
    """
    if clusters is not None and len(clusters) != len(strata):
        raise ValueError(f"{len(strata)} strata labels but {len(clusters)} cluster labels")
    groups: dict[Hashable, dict[Hashable, list[int]]] = {}
    for i, stratum in enumerate(strata):
        key = i if clusters is None else clusters[i]
        groups.setdefault(stratum, {}).setdefault(key, []).append(i)
    units = []  # per stratum: its clusters' member arrays (singletons when it cannot be clustered)
    for stratum in sorted(groups, key=str):
        members = [
            np.asarray(m, dtype=np.intp)
            for _, m in sorted(groups[stratum].items(), key=lambda kv: str(kv[0]))
        ]
        if len(members) < 2:
            members = [np.asarray([i], dtype=np.intp) for i in np.concatenate(members)]
        units.append(members)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        picked = [members[j] for members in units for j in rng.integers(0, len(members), len(members))]
        out.append(np.concatenate(picked) if picked else np.zeros(0, dtype=np.intp))
    return out


def basic_bootstrap(
    estimate: float,
    draws: Sequence[float] | np.ndarray,
    *,
    bounds: tuple[float, float] | None = None,
) -> dict[str, float | list[float] | str | int]:
    """A bias-corrected estimate and its basic bootstrap 95% interval, for a statistic the bootstrap biases.

    The bootstrap's premise is that resampled statistics sit around the estimate as the estimate sits
    around the truth. So a statistic whose draws sit mostly on one side of it (``bootstrap_bias`` =
    median draw − estimate) is itself biased by about as much, the other way, and the percentile interval,
    which lies around the draws, can miss the estimate altogether. The basic (reverse-percentile) interval
    ``[2·estimate − q97.5, 2·estimate − q2.5]`` corrects for that, and its centre ``2·estimate − median``
    is the bias-corrected ``value``, which the interval contains by construction. The uncorrected
    ``plug_in`` estimate is kept. ``bounds`` (a cosine's [−1, 1]) clip all three values, keeping their order.

    >>> r = basic_bootstrap(0.9, [0.80, 0.84, 0.85, 0.86, 0.90])
    >>> round(r["value"], 6), [round(x, 6) for x in r["ci95"]], round(r["bootstrap_bias"], 6)
    (0.95, [0.904, 0.996], -0.05)
    """
    data = np.asarray(draws, dtype=np.float64)
    data = data[np.isfinite(data)]
    if len(data) == 0 or not math.isfinite(estimate):
        low = high = value = math.nan
        median = math.nan
    else:
        q_low, median, q_high = (float(q) for q in np.percentile(data, [2.5, 50, 97.5]))
        value, low, high = 2 * estimate - median, 2 * estimate - q_high, 2 * estimate - q_low
        if bounds is not None:
            value, low, high = (min(max(v, bounds[0]), bounds[1]) for v in (value, low, high))
    return {
        "value": value,
        "ci95": [low, high],
        "plug_in": estimate,
        "bootstrap_bias": median - estimate,
        "n_bootstrap": len(data),
        "ci_method": "basic bootstrap (bias-corrected)",
    }
