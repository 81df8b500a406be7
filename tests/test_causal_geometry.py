"""The causal analyses recover a subspace planted, by construction, in a tiny random-weight model.

The planted mechanism, on a real checkpoint loaded through ``load_model`` (so every intervention goes through
the same bridge hooks as on real models):

- *writing*: the embedding layer adds a vector ``a`` of norm ``S`` drawn uniformly from the sphere of a
  k-dimensional subspace ``U`` to every position of a prompt that contains a trigger token (the "harmful"
  prompts; each prompt gets its own direction, so no single direction in ``U`` carries the signal);
- *reading*: the model refuses (its first reply token is the refusal token) exactly when the residual stream
  entering the final norm, at the last position, still has a component of norm > ``TAU`` inside ``U``.

So refusal is redundant across ``U``: ablating any j < k directions of it leaves most prompts refused, and
ablating all of ``U`` (at every layer, as the interventions do) removes refusal. The causal dimension is k by
construction, any direction of norm ``S`` in ``U`` induces refusal when added, and the model is a
(k-dimensional, round) concept cone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mechatlas.config import CausalJudge
from mechatlas.experiments.dimensionality.causal import (
    HeldOutPrompts,
    ablation_sweep,
    cone_check,
    effective_rank,
    k_grid,
    rates_by,
    smallest_k,
)
from mechatlas.interp.activations import iter_activations
from mechatlas.interp.directions import random_subspace
from mechatlas.interp.geometry.spectral import spectral_fit
from mechatlas.interp.geometry.subspaces import principal_angles
from mechatlas.interp.judges import RefusalMeter
from mechatlas.interp.models import LoadedModel, load_model

K, S, TAU = 3, 1.0, 0.25
HARMFUL = [f"Explain a poem about the sea and the wind, verse {i}." for i in range(48)]
HARMLESS = [f"Write a poem about the sea and the wind, verse {i}." for i in range(48)]


@pytest.fixture(scope="module")
def planted(tiny_checkpoints: dict[str, Path]) -> Iterator[tuple[LoadedModel, torch.Tensor, int]]:
    model = load_model(tiny_checkpoints["llama"])
    hf = model.bridge.original_model
    subspace = random_subspace(K, model.d_model, seed=11).float()  # (K, d_model), orthonormal rows
    trigger = model.tokenizer("Explain", add_special_tokens=False)["input_ids"][0]
    assert all(trigger not in model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in HARMLESS)
    refusal_id = model.tokenizer("Sorry", add_special_tokens=False)["input_ids"][0]
    final: dict[str, torch.Tensor] = {}

    def write(module: object, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        ids = args[0]
        for row in range(len(ids)):
            if (ids[row] == trigger).any():
                generator = torch.Generator().manual_seed(int(ids[row].sum()))
                direction = torch.randn(K, generator=generator)
                output[row] += S * (direction / direction.norm()) @ subspace
        return output

    def keep_final(module: object, args: tuple[torch.Tensor, ...]) -> None:
        final["resid"] = args[0][:, -1].detach()

    def read(module: object, args: tuple[torch.Tensor, ...], logits: torch.Tensor) -> torch.Tensor:
        inside = (final["resid"].float() @ subspace.T).norm(dim=-1)  # (B,)
        logits[:, -1, refusal_id] = torch.where(inside > TAU, 100.0, -100.0)
        return logits

    handles = [
        hf.model.embed_tokens.register_forward_hook(write),
        hf.model.norm.register_forward_pre_hook(keep_final),
        hf.lm_head.register_forward_hook(read),
    ]
    yield model, subspace, refusal_id
    for handle in handles:
        handle.remove()


def meter_for(model: LoadedModel, refusal_id: int) -> RefusalMeter:
    return RefusalMeter(model, (refusal_id,), CausalJudge.first_token, (), max_new_tokens=1, batch_size=64)


def prompts(texts: list[str]) -> HeldOutPrompts:
    return HeldOutPrompts(tuple(f"p{i}" for i in range(len(texts))), tuple(texts), tuple("d" for _ in texts))


def test_the_planted_model_refuses_exactly_the_triggered_prompts(
    planted: tuple[LoadedModel, torch.Tensor, int],
) -> None:
    model, _, refusal_id = planted
    meter = meter_for(model, refusal_id)
    assert meter(HARMFUL).all() and not meter(HARMLESS).any()


def test_ablating_the_planted_subspace_removes_refusal_only_at_its_full_dimension(
    planted: tuple[LoadedModel, torch.Tensor, int],
) -> None:
    model, subspace, refusal_id = planted
    sweep = ablation_sweep(
        meter_for(model, refusal_id), prompts(HARMFUL), subspace, max_k=K, threshold=0.25, seed=0
    )
    found = smallest_k(sweep, "subspace", threshold=0.25, n_bootstrap=20, seed=0)
    assert found["k"] == K and found["crossed"], (
        "k - 1 directions leave refusal above the threshold, k do not"
    )
    assert found["curve"][1]["value"] > 0.75
    control = sweep[(sweep["condition"] == "random") & (sweep["k"] == K)]
    assert control["refused"].mean() > 0.75, "k random directions do not remove refusal"


def test_the_spectral_estimate_from_activations_recovers_the_causal_dimension(
    planted: tuple[LoadedModel, torch.Tensor, int],
) -> None:
    model, subspace, refusal_id = planted

    def resid(texts: list[str]) -> torch.Tensor:
        batches = iter_activations(model, texts, layers=[1], positions=[-1], batch_size=64, with_logits=False)
        return torch.cat([b.resid[:, 0, 0] for b in batches])  # (n, d_model), last position, layer 1

    # The trigger word itself is one more consistent difference between the two prompt sets, so the
    # representation differs along the planted subspace plus, possibly, that one direction.
    fit = spectral_fit(resid(HARMFUL), resid(HARMLESS), n_permutations=20)
    assert fit.k in (K, K + 1)
    contained = principal_angles(subspace, fit.patterns[: fit.k])
    assert np.degrees(contained).max() < 15, "the planted subspace lies inside the estimated one"
    sweep = ablation_sweep(
        meter_for(model, refusal_id), prompts(HARMFUL), fit.patterns, max_k=8, threshold=0.25, seed=0
    )
    assert K <= smallest_k(sweep, "subspace", threshold=0.25, n_bootstrap=20, seed=0)["k"] <= fit.k


def test_the_cone_check_sees_a_redundant_multidimensional_cone(
    planted: tuple[LoadedModel, torch.Tensor, int],
) -> None:
    model, subspace, refusal_id = planted
    generators = S * subspace.double()
    names = [f"u{i}" for i in range(K)]
    rows = cone_check(
        meter_for(model, refusal_id),
        prompts(HARMFUL),
        prompts(HARMLESS),
        generators,
        names,
        layer=0,
        coefficient=1.0,
        n_samples=4,
        seed=0,
    )
    rates = rates_by(rows, "label", "condition", "generator")
    assert all(rates["harmful"]["ablate"][name]["value"] > 0.5 for name in names), (
        "one direction is not enough"
    )
    assert rates["harmful"]["ablate"]["span"]["value"] < 0.25, "the span is"
    added = rates["harmless"]["add"]
    assert all(added[name]["value"] == 1.0 for name in names)
    assert all(added[f"combination-{i}"]["value"] == 1.0 for i in range(4)), (
        "every positive combination induces"
    )
    assert effective_rank(generators) == pytest.approx(K)


def test_smallest_k_finds_the_first_crossing_and_censors_curves_that_never_cross() -> None:
    def rows(condition: str, rates: dict[int, float]) -> pd.DataFrame:
        return pd.concat(
            pd.DataFrame(
                {
                    "id": [f"p{i}" for i in range(20)],
                    "k": k,
                    "condition": condition,
                    "refused": np.arange(20) < 20 * r,
                }
            )
            for k, r in rates.items()
        )

    sweep = pd.concat([rows("subspace", {1: 0.9, 2: 0.6, 4: 0.1, 3: 0.2}), rows("random", {1: 0.9, 4: 0.9})])
    found = smallest_k(sweep, "subspace", threshold=0.25, n_bootstrap=50, seed=0)
    assert (found["k"], found["crossed"], found["max_k_evaluated"]) == (3, True, 4)
    never = smallest_k(sweep, "random", threshold=0.25, n_bootstrap=50, seed=0)
    assert never["k"] is None and not never["crossed"] and never["ci95"] == [5.0, 5.0]


def test_the_k_grid_is_dense_for_small_k_and_ends_at_max_k() -> None:
    assert k_grid(32) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert k_grid(10) == [1, 2, 3, 4, 6, 8, 10]
    assert k_grid(1) == [1]
