"""Subspaces of the residual stream: whitening, principal angles, overlaps and cosines.

``fit_whitener`` maps activations to coordinates in which the pooled covariance is the identity (with a
ridge), so every direction's sampling noise is comparable; the spectral estimator works there.
``principal_angles`` and ``subspace_overlap`` compare two spans (1 for equal spans, about ``k/d`` for
random ones), ``cosine_matrix`` compares directions pairwise. Internals are float64 on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.directions import orthonormal_basis


# Internals work on float64 torch tensors on the CPU: torch's BLAS keeps its speed when other processes
# share the cores, where a multi-threaded OpenBLAS (numpy's) can slow down tenfold.
def _float64(x: Tensor | np.ndarray) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64)
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def _index(rows: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(rows, dtype=np.int64))


@dataclass(frozen=True)
class Whitener:
    """Coordinates in which the pooled (label-free) covariance is the identity, on its top ``rank`` PCs.

    ``y = (x - mean) @ filters``; ``patterns[:, i]`` is the activation-space displacement that moves
    ``y_i`` by one, so a whitened direction ``v`` corresponds to the activation direction ``patterns @ v``.
    """

    mean: Float[Tensor, " d_model"]
    filters: Float[Tensor, "d_model rank"]
    patterns: Float[Tensor, "d_model rank"]

    @property
    def rank(self) -> int:
        return int(self.filters.shape[1])

    def transform(self, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n rank"]:
        return (x - self.mean) @ self.filters


def fit_whitener(
    x: Float[Tensor, "n d_model"], *, max_rank: int, ridge: float = 1e-3, rel_tol: float = 1e-9
) -> Whitener:
    """Whiten ``x`` (rows are samples, float64) on at most ``max_rank`` principal components.

    The pooled covariance does not depend on the labels, so one whitener serves the observed labels and
    every permutation of them. ``ridge`` (a fraction of the mean eigenvalue) keeps near-empty directions
    from being blown up; components below ``rel_tol`` of the largest are dropped (at layer 0 every prompt
    has the same post-instruction activation, and the rank is then 0). With fewer samples than
    dimensions (``n < d``) it works in the n-dimensional sample space, where the covariance's nonzero
    spectrum lives, at O(n²d) instead of O(d³).
    """
    mean = x.mean(dim=0)
    centred = x - mean
    n, d = centred.shape
    if n < d:
        # Sample space: the n x n Gram matrix has the covariance's nonzero eigenvalues, and its
        # eigenvectors u map to the covariance's as v = Xᵀu / √((n-1)λ): O(n²d) instead of O(d³).
        gram = centred @ centred.T / max(n - 1, 1)
        eigenvalues, sample_vectors = torch.linalg.eigh(gram)
        eigenvalues, sample_vectors = eigenvalues.flip(0), sample_vectors.flip(1)
    else:
        cov = centred.T @ centred / max(n - 1, 1)
        eigenvalues, vectors = torch.linalg.eigh(cov)  # ascending
        eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
    top = float(eigenvalues[0]) if len(eigenvalues) else 0.0
    keep = min(int((eigenvalues > rel_tol * top).sum()) if top > 0 else 0, max_rank)
    eigenvalues = eigenvalues[:keep]
    if n < d:
        vectors = centred.T @ sample_vectors[:, :keep] / torch.sqrt(eigenvalues * max(n - 1, 1))
    else:
        vectors = vectors[:, :keep]
    scale = torch.sqrt(eigenvalues + ridge * (eigenvalues.mean() if keep else 0.0))
    return Whitener(mean=mean, filters=vectors / scale, patterns=vectors * scale)


def principal_angles(
    a: Float[Tensor, "k1 d_model"] | np.ndarray, b: Float[Tensor, "k2 d_model"] | np.ndarray
) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of the rows of ``a`` and of ``b``."""
    qa, qb = orthonormal_basis(_float64(a)), orthonormal_basis(_float64(b))
    if len(qa) == 0 or len(qb) == 0:
        return np.zeros(0)
    cosines = torch.linalg.svdvals(qa @ qb.T).numpy()
    return np.asarray(np.arccos(np.clip(cosines, -1.0, 1.0)))


def subspace_overlap(
    a: Float[Tensor, "k1 d_model"] | np.ndarray, b: Float[Tensor, "k2 d_model"] | np.ndarray
) -> float:
    """Mean squared cosine of the principal angles: 1 for equal spans, about ``k/d`` for random ones."""
    angles = principal_angles(a, b)
    return float(np.mean(np.cos(angles) ** 2)) if len(angles) else math.nan


def cosine_matrix(directions: Float[Tensor, "m d_model"] | np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities of the rows of ``directions``, in float64."""
    matrix = _float64(directions)
    unit = matrix / matrix.norm(dim=1, keepdim=True).clamp(min=1e-30)
    return np.asarray((unit @ unit.T).numpy())
