"""The geometry estimators at real width: sample space when n < d, every core, the same answers as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mechatlas.config import Params
from mechatlas.experiments.dimensionality.layers import dimensionality_per_layer
from mechatlas.interp.geometry import (
    EstimatorDeclined,
    fit_whitener,
    planted_activations,
    subspace_dimensionality,
)
from mechatlas.interp.geometry.reference import dense_whitened, spectral_dimensionality_reference
from mechatlas.interp.geometry.spectral import _spectral_bootstrap, spectral_fit
from mechatlas.interp.geometry.subspaces import _float64

CASES = [
    pytest.param(2, 160, 50, id="sample space (d > n)"),
    pytest.param(3, 32, 200, id="activation space (d < n)"),
    pytest.param(0, 96, 40, id="no planted signal, d > n"),
]


@pytest.mark.parametrize(("k", "d_model", "n"), CASES)
def test_the_spectral_estimator_gives_the_answers_of_the_dense_reference(
    k: int, d_model: int, n: int
) -> None:
    data = planted_activations(k, d_model=d_model, n_per_class=n, seed=4)
    settings = dict(n_bootstrap=16, n_permutations=30, seed=7)
    fast = subspace_dimensionality(data.harmful, data.harmless, method="spectral", **settings)
    slow = spectral_dimensionality_reference(data.harmful, data.harmless, **settings)
    assert fast.k == slow.k
    assert fast.ci == slow.ci
    np.testing.assert_array_equal(fast.bootstrap_k, slow.bootstrap_k)
    assert fast.extra["null_threshold"] == pytest.approx(slow.threshold, rel=1e-9)
    np.testing.assert_allclose(fast.fit.eigenvalues[: len(slow.eigenvalues)], slow.eigenvalues, atol=1e-9)
    assert fast.extra["participation_ratio"] == pytest.approx(slow.participation_ratio, rel=1e-9)
    np.testing.assert_allclose(fast.extra["participation_ratio_ci95"], slow.participation_ci, rtol=1e-9)


def test_the_planted_count_is_found_in_sample_space() -> None:
    data = planted_activations(
        2,
        d_model=400,
        n_per_class=150,
        seed=0,
    )
    result = subspace_dimensionality(data.harmful, data.harmless, n_bootstrap=10, n_permutations=40)
    assert result.k >= 1 and result.ci[0] <= result.k <= result.ci[1]
    assert result.fit.patterns.shape[1] == 400  # patterns come back in activation space


def test_sample_space_whitening_equals_the_dense_one_up_to_rotation() -> None:
    x = _float64(torch.randn(40, 120, generator=torch.Generator().manual_seed(0)) @ torch.randn(120, 120))
    fast = fit_whitener(x, max_rank=20, ridge=1e-3)
    y_fast = fast.transform(x)
    y_dense = dense_whitened(x, max_rank=20, ridge=1e-3)
    # Eigenvectors are defined up to sign (and rotation within ties): compare the whitened Gram matrices.
    torch.testing.assert_close(y_fast @ y_fast.T, y_dense @ y_dense.T, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(
        fast.patterns.T @ fast.filters, torch.eye(20, dtype=torch.float64), atol=1e-8, rtol=0
    )


def test_resamples_do_not_depend_on_how_many_cores_evaluate_them() -> None:
    data = planted_activations(1, d_model=80, n_per_class=30, seed=2)
    h, b = _float64(data.harmful), _float64(data.harmless)
    fit = spectral_fit(h, b, n_permutations=20)
    one = _spectral_bootstrap(
        h, b, fit.eigenvalues, fit.threshold, n_bootstrap=8, max_rank=256, ridge=1e-3, seed=1, workers=1
    )
    many = _spectral_bootstrap(
        h, b, fit.eigenvalues, fit.threshold, n_bootstrap=8, max_rank=256, ridge=1e-3, seed=1, workers=4
    )
    for a, c in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, c)


def test_inlp_declines_when_there_are_no_more_fit_prompts_than_dimensions() -> None:
    wide = planted_activations(1, d_model=64, n_per_class=40, seed=0)  # 56 fit prompts <= 64 dimensions
    with pytest.raises(EstimatorDeclined, match=r"INLP declined: d_model = 64 is not below the 56 prompts"):
        subspace_dimensionality(wide.harmful, wide.harmless, method="probe", n_bootstrap=2)
    narrow = planted_activations(1, d_model=16, n_per_class=80, seed=0)
    assert subspace_dimensionality(narrow.harmful, narrow.harmless, method="probe", n_bootstrap=2).k >= 1


def test_a_declined_inlp_layer_is_recorded_with_its_reason_not_counted() -> None:
    data = planted_activations(1, d_model=64, n_per_class=40, seed=0)
    settings = Params().dimensionality.model_copy(update={"n_bootstrap": 4, "n_permutations": 10})
    rows, spectral = dimensionality_per_layer(data.harmful[:, None, :], data.harmless[:, None, :], settings)
    probe = next(r for r in rows if r["estimator"] == "probe")
    assert probe["k"] is None and "INLP declined" in probe["declined"]
    assert 0 in spectral
