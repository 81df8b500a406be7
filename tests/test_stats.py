"""Intervals (mechatlas.stats): resampling whole clusters within strata, and the bias-corrected bootstrap.

The planted statistic is the cosine between two difference-of-means directions estimated from noisy
samples, the statistic behind the dimensionality page's between-domain cosine: noise makes estimated
directions look less alike than the true ones, and each bootstrap resample adds noise again, so a
percentile interval sits below its own estimate.
"""

from __future__ import annotations

import numpy as np

from mechatlas.stats import basic_bootstrap, percentile_ci, stratified_cluster_resamples


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _noisy_cosine(
    seed: int, n: int = 30, d: int = 48, angle: float = 0.3
) -> tuple[float, float, list[float]]:
    """True cosine, plug-in estimate and bootstrap draws of the cosine between two noisy means."""
    mu = np.zeros((2, d))
    mu[0, 0], mu[1, 0], mu[1, 1] = 3.0, 3.0 * np.cos(angle), 3.0 * np.sin(angle)
    rng = np.random.default_rng(seed)
    z = np.concatenate([mu[0] + rng.standard_normal((n, d)), mu[1] + rng.standard_normal((n, d))])

    def statistic(rows: np.ndarray) -> float:
        return _cosine(z[rows[rows < n]].mean(0), z[rows[rows >= n]].mean(0))

    resamples = stratified_cluster_resamples([0] * n + [1] * n, None, n_resamples=100, seed=seed)
    return float(np.cos(angle)), statistic(np.arange(2 * n)), [statistic(rows) for rows in resamples]


def test_a_biased_statistic_s_reported_interval_contains_its_reported_point() -> None:
    for seed in range(10):
        _, estimate, draws = _noisy_cosine(seed)
        reported = basic_bootstrap(estimate, draws, bounds=(-1.0, 1.0))
        assert reported["ci95"][0] <= reported["value"] <= reported["ci95"][1]
        assert reported["plug_in"] == estimate and reported["bootstrap_bias"] < 0


def test_the_percentile_interval_misses_the_biased_estimate_that_the_corrected_one_covers() -> None:
    """The original defect: the percentile interval of the cosine lay below its own point estimate (and
    below the truth); the bias-corrected interval covers the true cosine far more often."""
    missed_point = covered_percentile = covered_basic = 0
    for seed in range(20):
        truth, estimate, draws = _noisy_cosine(seed)
        low, high = percentile_ci(draws)
        missed_point += not low <= estimate <= high
        covered_percentile += low <= truth <= high
        corrected = basic_bootstrap(estimate, draws, bounds=(-1.0, 1.0))["ci95"]
        covered_basic += corrected[0] <= truth <= corrected[1]
    assert missed_point >= 15
    assert covered_percentile <= 2 and covered_basic >= 12


def test_an_unbiased_statistic_keeps_its_plug_in_estimate_and_a_percentile_like_interval() -> None:
    values = np.random.default_rng(0).standard_normal(200)
    resamples = stratified_cluster_resamples([0] * 200, None, n_resamples=400, seed=1)
    draws = [float(values[rows].mean()) for rows in resamples]
    reported = basic_bootstrap(float(values.mean()), draws)
    assert abs(reported["value"] - values.mean()) < 0.02
    assert np.allclose(reported["ci95"], percentile_ci(draws), atol=0.03)


def test_a_cluster_resample_keeps_every_stratum_and_draws_whole_clusters() -> None:
    strata = ["a"] * 6 + ["b"] * 4
    clusters = ["x", "x", "x", "y", "y", "y", "x", "x", "z", "z"]  # framing x occurs in both domains
    for rows in stratified_cluster_resamples(strata, clusters, n_resamples=50, seed=0):
        picked = rows.tolist()
        assert set(picked) & {0, 1, 2, 3, 4, 5} and set(picked) & {6, 7, 8, 9}
        for cell in (
            {0, 1, 2},
            {3, 4, 5},
            {6, 7},
            {8, 9},
        ):  # a (domain, framing) cell comes whole or not at all
            counts = [picked.count(i) for i in cell]
            assert len(set(counts)) == 1
        assert len([i for i in picked if i < 6]) in (6,) and len([i for i in picked if i >= 6]) == 4


def test_a_stratum_with_one_cluster_is_resampled_by_item() -> None:
    draws = stratified_cluster_resamples(["a"] * 5, ["x"] * 5, n_resamples=30, seed=0)
    assert any(len(set(rows.tolist())) < 5 for rows in draws)  # items drawn with replacement, not all at once
