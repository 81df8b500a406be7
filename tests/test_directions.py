"""Difference-in-means directions and the paper's selection rule, on planted answers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped

from mechatlas.experiments.refusal_direction.selection import (
    SelectionFilters,
    filter_columns,
    select_direction,
)
from mechatlas.interp.directions import MeanAccumulator, difference_in_means, random_direction, unit

checked_difference_in_means = jaxtyped(typechecker=beartype)(difference_in_means)


def test_difference_in_means_recovers_a_planted_direction() -> None:
    generator = torch.Generator().manual_seed(0)
    d_model, n = 64, 400
    delta = torch.randn(d_model, generator=generator)
    harmless = torch.randn(n, 3, 2, d_model, generator=generator)  # (prompt, position, layer, d_model)
    harmful = harmless + delta + 0.5 * torch.randn(n, 3, 2, d_model, generator=generator)
    means = {"harmful": MeanAccumulator(), "harmless": MeanAccumulator()}
    for start in range(0, n, 37):  # uneven batches
        means["harmful"].update(harmful[start : start + 37])
        means["harmless"].update(harmless[start : start + 37])
    candidates = checked_difference_in_means(means["harmful"].mean(), means["harmless"].mean())
    assert candidates.shape == (3, 2, d_model) and candidates.dtype == torch.float64
    cosine = unit(candidates) @ unit(delta.double())
    assert (cosine > 0.99).all()


def test_the_running_mean_accumulates_in_float64_and_survives_a_large_offset() -> None:
    # float32 sums of 10_000 values near 1e4 lose the small differences; float64 sums keep them.
    values = (1e4 + torch.arange(10_000, dtype=torch.float64) * 1e-3).float().reshape(-1, 1)
    accumulator = MeanAccumulator()
    for start in range(0, len(values), 1000):
        accumulator.update(values[start : start + 1000])
    assert accumulator.count == 10_000
    assert accumulator.mean().dtype == torch.float64
    assert abs(accumulator.mean().item() - values.double().mean().item()) < 1e-9


def test_an_empty_mean_is_an_error_that_says_why() -> None:
    with pytest.raises(ValueError, match="prompt set for this mean is empty"):
        MeanAccumulator().mean()


def test_the_random_control_has_the_requested_norm_and_depends_only_on_its_seed() -> None:
    a, b, c = (
        random_direction(32, 5.0, seed=1),
        random_direction(32, 5.0, seed=1),
        random_direction(32, 5.0, seed=2),
    )
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.norm().item() == pytest.approx(5.0)


def _scores(rows: list[tuple[int, int, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["position", "layer", "bypass_score", "induce_score", "kl_score"]
    ).assign(norm=1.0)


def test_selection_takes_the_lowest_bypass_score_among_candidates_passing_every_filter() -> None:
    scores = _scores(
        [
            (-1, 0, 2.0, 1.0, 0.01),  # passes, worse bypass
            (-1, 1, 0.5, 1.0, 0.01),  # passes: the answer
            (-2, 1, -3.0, -1.0, 0.01),  # best bypass but adding it does not induce refusal
            (-2, 2, -4.0, 2.0, 0.50),  # best bypass but KL too large
            (-1, 9, -5.0, 2.0, 0.01),  # best bypass but too late (9 >= 0.8 * 10)
        ]
    )
    chosen = select_direction(scores, n_layers=10, filters=SelectionFilters())
    assert (chosen.position, chosen.layer) == (-1, 1)
    assert chosen.passed_filters and chosen.relaxed == ()


@pytest.mark.parametrize(
    ("filters", "expected_layer"),
    [
        (SelectionFilters(max_layer_fraction=1.0), 9),
        (SelectionFilters(max_kl=1.0), 2),
        (SelectionFilters(min_induce=-2.0), 1),
    ],
)
def test_each_filter_is_a_parameter(filters: SelectionFilters, expected_layer: int) -> None:
    scores = _scores(
        [
            (-1, 1, 0.5, 1.0, 0.01),
            (-2, 1, -3.0, -1.0, 0.01),
            (-2, 2, -4.0, 2.0, 0.5),
            (-1, 9, -5.0, 2.0, 0.01),
        ]
    )
    assert select_direction(scores, n_layers=10, filters=filters).layer == expected_layer


def test_when_no_candidate_passes_the_fewest_failed_filters_win_and_are_reported() -> None:
    scores = _scores([(-1, 0, 5.0, -1.0, 0.0), (-1, 1, 0.5, 3.0, 0.8), (-1, 2, 0.1, -1.0, 0.9)])
    chosen = select_direction(scores, n_layers=10, filters=SelectionFilters())
    assert chosen.layer == 1  # fails one filter (KL); layer 2 fails two
    assert not chosen.passed_filters and chosen.relaxed == ("kl",)


def test_zero_length_candidates_are_never_selected() -> None:
    scores = _scores([(-1, 0, -9.0, 1.0, 0.0), (-1, 1, 0.5, 1.0, 0.0)])
    scores.loc[0, "norm"] = 0.0
    assert select_direction(scores, n_layers=10, filters=SelectionFilters()).layer == 1


@pytest.mark.parametrize(("n_layers", "last_kept"), [(4, 2), (5, 3), (10, 7), (26, 19)])
def test_the_layer_filter_keeps_layers_below_int_of_the_fraction_as_the_reference_does(
    n_layers: int, last_kept: int
) -> None:
    """andyrdt/refusal_direction discards ``layer >= int(n_layer * (1 - 0.2))``: on 4 layers, layer 3 goes."""
    scores = _scores([(-1, layer, 0.0, 1.0, 0.0) for layer in range(n_layers)])
    passes = filter_columns(scores, n_layers, SelectionFilters(max_layer_fraction=0.8))["passes_layer"]
    assert scores["layer"][passes].max() == last_kept
