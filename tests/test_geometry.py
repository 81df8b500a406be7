"""Dimensionality estimators on activations with a planted answer (mechatlas.geometry).

The generator plants a k-dimensional difference subspace next to shared directions of huge variance
(the kind real residual streams have), so a test passes only if an estimator counts where the classes
*differ*, not where they vary. Public tensor functions are called through jaxtyping + beartype, so their
shape annotations are checked at runtime here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped

from mechatlas.interp.directions import random_subspace
from mechatlas.interp.geometry.dimensionality import subspace_dimensionality
from mechatlas.interp.geometry.planted import PlantedActivations, planted_activations
from mechatlas.interp.geometry.projections import (
    auc,
    domain_directions,
    leave_one_out_directions,
    relative_position,
)
from mechatlas.interp.geometry.spectral import spectral_fit
from mechatlas.interp.geometry.subspaces import principal_angles, subspace_overlap

FAST = {"n_bootstrap": 10, "n_permutations": 30}


def checked(function: Callable[..., Any]) -> Callable[..., Any]:
    return jaxtyped(typechecker=beartype)(function)


subspace_dimensionality = checked(subspace_dimensionality)


@pytest.fixture(scope="module", params=[1, 3, 6])
def planted(request: pytest.FixtureRequest) -> PlantedActivations:
    return planted_activations(request.param, d_model=128, n_per_class=600, seed=request.param)


@pytest.mark.parametrize("method", ["spectral", "probe"])
def test_each_label_free_estimator_recovers_the_planted_dimension_within_one(
    planted: PlantedActivations, method: str
) -> None:
    k = planted.subspace.shape[0]
    result = subspace_dimensionality(planted.harmful, planted.harmless, method=method, seed=0, **FAST)
    assert abs(result.k - k) <= 1, (method, k, result.summary())
    assert result.ci[0] <= result.k <= result.ci[1]
    assert (result.n_harmful, result.n_harmless) == (600, 600)


def test_huge_shared_directions_are_not_counted() -> None:
    data = planted_activations(0, d_model=128, n_per_class=600, n_nuisance=6, nuisance_scale=100.0, seed=4)
    pooled = torch.cat([data.harmful, data.harmless]).double()
    variance = torch.linalg.eigvalsh(torch.cov(pooled.T)).flip(0)
    assert (variance[:6] > 100 * variance[6]).all(), "the nuisance directions dominate the raw variance"
    for method in ("spectral", "probe"):
        assert subspace_dimensionality(data.harmful, data.harmless, method=method, **FAST).k <= 1


def test_the_top_spectral_direction_is_the_difference_in_means_and_the_top_k_span_the_planted_subspace() -> (
    None
):
    # A direction's activation-space pattern is estimated with noise that grows with the variance along
    # each coordinate, so here the shared directions are moderate (the counts above do not suffer from
    # this: they are read in whitened coordinates).
    one = planted_activations(1, d_model=64, n_per_class=500, nuisance_scale=5.0, seed=1)
    fit = checked(spectral_fit)(one.harmful, one.harmless, n_permutations=20)
    mean_difference = one.harmful.double().mean(0) - one.harmless.double().mean(0)
    assert torch.nn.functional.cosine_similarity(fit.patterns[0], mean_difference, dim=0) > 0.98
    assert abs(torch.nn.functional.cosine_similarity(fit.patterns[0], one.subspace[0].double(), dim=0)) > 0.95
    three = planted_activations(
        3, d_model=64, n_per_class=800, structure="subtypes", separation=5.0, nuisance_scale=5.0, seed=2
    )
    fit = spectral_fit(three.harmful, three.harmless, n_permutations=20)
    assert fit.k == 3
    assert subspace_overlap(fit.patterns[:3], three.subspace) > 0.9


def test_spectral_counts_a_subtype_mixture_that_inlp_cannot() -> None:
    # Three harm sub-types around the harmless mean: the class means differ along one direction only,
    # which is all a binary linear probe can see (the blind spot the geometry docstring states).
    data = planted_activations(3, d_model=128, n_per_class=800, structure="subtypes", separation=5.0, seed=3)
    spectral = subspace_dimensionality(data.harmful, data.harmless, method="spectral", **FAST)
    probe = subspace_dimensionality(data.harmful, data.harmless, method="probe", **FAST)
    assert abs(spectral.k - 3) <= 1
    assert probe.k <= 1


def test_inlp_counts_one_direction_for_equal_scale_features() -> None:
    # The same three features at one scale: a probe's weight is then parallel to the mean difference, one cut
    # erases every linear trace, and INLP says 1 where the distributions differ along 3 directions.
    data = planted_activations(3, d_model=128, n_per_class=800, scale_ratio=1.0, seed=5)
    assert subspace_dimensionality(data.harmful, data.harmless, method="probe", **FAST).k == 1
    assert abs(subspace_dimensionality(data.harmful, data.harmless, method="spectral", **FAST).k - 3) <= 1


def test_estimates_are_reproducible_for_a_seed() -> None:
    data = planted_activations(2, d_model=32, n_per_class=200, seed=6)
    runs = [
        subspace_dimensionality(data.harmful, data.harmless, method="spectral", seed=3, **FAST)
        for _ in range(2)
    ]
    assert runs[0].summary() == runs[1].summary()
    assert np.array_equal(runs[0].bootstrap_k, runs[1].bootstrap_k)


def test_identical_activations_give_dimension_zero() -> None:
    same = torch.ones(20, 16)
    fit = spectral_fit(same, same.clone(), n_permutations=5)
    assert (fit.k, fit.rank) == (0, 0)


def test_bad_shapes_and_methods_are_rejected() -> None:
    data = planted_activations(1, d_model=16, n_per_class=40)
    with pytest.raises(Exception, match="harmless"):
        subspace_dimensionality(data.harmful, data.harmless[:, :8])
    with pytest.raises((ValueError, TypeError), match="spectral"):  # the type checker may refuse it first
        subspace_dimensionality(data.harmful, data.harmless, method="pca")  # type: ignore[arg-type]


def test_principal_angles_of_known_subspaces() -> None:
    e = torch.eye(4, dtype=torch.float64)
    angles = checked(principal_angles)(e[:2], torch.stack([e[1], (e[0] + e[2]) / 2**0.5]))
    assert np.allclose(np.degrees(angles), [0.0, 45.0])
    assert subspace_overlap(e[:2], e[2:]) == pytest.approx(0.0)
    random = random_subspace(3, 4, seed=0)
    assert torch.allclose(random @ random.T, torch.eye(3, dtype=torch.float64), atol=1e-10)


def test_domain_directions_and_leave_one_out() -> None:
    harmful = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    domains = ["a", "a", "b"]
    zero = torch.zeros(2)
    own = domain_directions(harmful, domains, zero)
    lodo = leave_one_out_directions(harmful, domains, zero)
    assert own["a"].tolist() == [2.0, 0.0] and own["b"].tolist() == [0.0, 2.0]
    assert lodo["a"].tolist() == [0.0, 2.0] and lodo["b"].tolist() == [2.0, 0.0]


def test_auc_and_relative_position() -> None:
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    middle = relative_position(np.full(10, 0.5), np.zeros(10), np.ones(10), n_bootstrap=5, seed=0)
    assert middle["value"] == pytest.approx(0.5) and middle["n"] == [10, 10, 10]
