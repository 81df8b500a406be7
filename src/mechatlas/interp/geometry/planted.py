"""Activations with a planted answer: the test bed of every dimensionality estimator.

``planted_activations(k, ...)`` draws harmless and harmful activations that differ along exactly ``k``
known directions (``subspace``), with a chosen structure (separate mean shifts, a cone of sub-types, or
equal-scale features) on top of anisotropic shared noise, so that an estimator's answer can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

Structure = Literal["features", "subtypes"]


# --- a planted answer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedActivations:
    """Synthetic activations whose harmful-versus-harmless difference lives in a known subspace."""

    harmful: Float[Tensor, "n_harmful d_model"]
    harmless: Float[Tensor, "n_harmless d_model"]
    subspace: Float[Tensor, "k d_model"]  # orthonormal basis of the planted difference subspace
    nuisance: Float[Tensor, "n_nuisance d_model"]  # shared high-variance directions (orthonormal)
    subtype: Int[Tensor, " n_harmful"]  # which sub-type each harmful row is (all 0 for "features")


def planted_activations(
    k: int,
    *,
    d_model: int = 128,
    n_per_class: int = 600,
    structure: Structure = "features",
    separation: float = 3.0,
    scale_ratio: float = 2.0,
    strength_spread: float = 0.5,
    n_nuisance: int = 4,
    nuisance_scale: float = 50.0,
    seed: int = 0,
) -> PlantedActivations:
    """Activations with a planted ``k``-dimensional difference subspace and shared nuisance directions.

    Both classes share isotropic unit noise plus ``n_nuisance`` directions of standard deviation
    ``nuisance_scale`` (the few huge directions of real residual streams); these must not be counted.
    Within the planted subspace ``U`` (orthonormal, orthogonal to the nuisance):

    - ``"features"``: ``k`` harm features with graded scales, as residual-stream features have. Feature
      ``j`` has noise s.d. ``σ_j = scale_ratio**j`` in both classes, and every harmful row is displaced
      along it by ``separation·σ_j·(1 + strength_spread·ε)``, ε ~ N(0, 1) independent per row and
      feature. The classes differ in mean and in spread along all ``k`` directions; each feature carries
      the label on its own (d' = ``separation``).
    - ``"subtypes"``: ``k`` harm sub-types (domains); a harmful row of sub-type ``j`` is displaced by
      ``separation·(1 + strength_spread·ε)`` along ``u_j``, with isotropic noise. The class means differ
      along one direction only; the other ``k - 1`` live in how the sub-types spread around it (the
      mixture a binary probe cannot count).
    """
    if k < 0 or k + n_nuisance > d_model:
        raise ValueError(f"need 0 <= k and k + n_nuisance <= d_model, got k={k}, n_nuisance={n_nuisance}")
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d_model, k + n_nuisance)))  # (d_model, k + n_nuisance)
    planted, nuisance = basis[:, :k], basis[:, k:]
    feature_sd = scale_ratio ** np.arange(k) if structure == "features" else np.ones(k)

    def shared_noise(n: int) -> np.ndarray:
        noise = rng.standard_normal((n, d_model))
        extra_sd = np.sqrt(np.maximum(feature_sd**2 - 1.0, 0.0))  # features: raise s.d. along u_j to σ_j
        noise += (rng.standard_normal((n, k)) * extra_sd) @ planted.T
        noise += (rng.standard_normal((n, n_nuisance)) * nuisance_scale) @ nuisance.T
        return noise

    harmful = shared_noise(n_per_class)
    subtype = np.zeros(n_per_class, dtype=np.int64)
    if k > 0:
        strength = 1.0 + strength_spread * rng.standard_normal((n_per_class, k))
        if structure == "features":
            harmful += (separation * feature_sd * strength) @ planted.T
        elif structure == "subtypes":
            subtype = rng.integers(0, k, n_per_class)
            harmful += (separation * strength[np.arange(n_per_class), subtype])[:, None] * planted[
                :, subtype
            ].T
        else:
            raise ValueError(f"unknown structure {structure!r}; use 'features' or 'subtypes'")
    harmless = shared_noise(n_per_class)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)  # noqa: E731
    return PlantedActivations(
        harmful=as_tensor(harmful),
        harmless=as_tensor(harmless),
        subspace=as_tensor(planted.T),
        nuisance=as_tensor(nuisance.T),
        subtype=torch.from_numpy(subtype),
    )
