"""Matched controls for estimated refusal subspaces and domain directions: what chance alone would give.

A causal effect of ablating an estimated subspace means something only beside a control that could have
produced it. Uniformly random directions capture about k/d of any fixed direction, so at d = 4096 they
can hardly fail; the controls here go through the same data:

- ``label_permuted_patterns``: the spectral estimator's top patterns after shuffling the harmful/harmless
  labels (the same estimator, the same prompts, no label information);
- ``principal_components``: the top principal components of harmless activations (the directions of
  largest ordinary variance, which any ablation that breaks the model would hit);
- ``pseudo_domain_directions``: difference-in-means directions of random partitions of the harmful
  prompts into groups of the real domains' sizes (a null cone and a null for domain transfer).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.geometry.spectral import spectral_fit


def label_permuted_patterns(
    harmful: Float[Tensor, "n_harmful d_model"],
    harmless: Float[Tensor, "n_harmless d_model"],
    k: int,
    *,
    seed: int,
    max_rank: int = 256,
    ridge: float = 1e-3,
) -> Float[Tensor, "k_out d_model"]:
    """The top ``k`` spectral patterns of the two sets pooled and relabelled at random (same sizes)."""
    pooled = torch.cat([harmful.double(), harmless.double()])
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(pooled)))
    shuffled = pooled[order]
    fit = spectral_fit(
        shuffled[: len(harmful)],
        shuffled[len(harmful) :],
        n_permutations=1,
        max_rank=max_rank,
        ridge=ridge,
        n_patterns=k,
        seed=seed,
    )
    return fit.patterns[:k].contiguous()


def principal_components(x: Float[Tensor, "n d_model"], k: int) -> Float[Tensor, "k_out d_model"]:
    """The top ``k`` principal directions of ``x`` (unit rows, largest variance first)."""
    centred = x.double() - x.double().mean(dim=0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return vh[: min(k, vh.shape[0])].contiguous()


def pseudo_domain_directions(
    harmful: Float[Tensor, "n_harmful d_model"],
    sizes: Sequence[int],
    harmless_mean: Float[Tensor, " d_model"],
    *,
    n_draws: int,
    seed: int,
) -> Float[Tensor, "draw group d_model"]:
    """Per draw, the difference in means of a random partition of the harmful rows into groups of ``sizes``."""
    if sum(sizes) > len(harmful):
        raise ValueError(f"groups of {list(sizes)} need {sum(sizes)} rows, got {len(harmful)}")
    rng = np.random.default_rng(seed)
    h, mean = harmful.double(), harmless_mean.double()
    bounds = np.cumsum([0, *sizes])
    draws = []
    for _ in range(n_draws):
        order = rng.permutation(len(h))
        draws.append(
            torch.stack(
                [h[torch.from_numpy(order[a:b])].mean(0) - mean for a, b in itertools.pairwise(bounds)]
            )
        )
    return torch.stack(draws) if draws else torch.zeros(0, len(sizes), h.shape[1], dtype=torch.float64)
