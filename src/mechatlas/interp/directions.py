"""Directions in the residual stream: means, differences of means, orthonormal bases, random controls.

Arditi et al. 2024 (arXiv 2406.11717, §2.3) compute, for every post-instruction position ``i`` and layer
``l``, the difference between the mean residual activation on harmful and on harmless instructions,
``r_i^l = μ_i^l(harmful) - μ_i^l(harmless)``: one candidate refusal direction each. Means are
accumulated in float64 (``MeanAccumulator``), one batch at a time. ``orthonormal_basis`` is the one
orthonormalization of the project (ablation, weight orthogonalization and principal angles use it);
``random_direction`` and ``random_subspace`` draw the uniform controls.

>>> acc = MeanAccumulator()
>>> acc.update(torch.ones(2, 3)); acc.update(torch.zeros(2, 3))
>>> acc.mean().tolist()
[0.5, 0.5, 0.5]
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


class MeanAccumulator:
    """A running mean over the first axis of the batches it sees, summed in float64."""

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.count = 0

    def update(self, batch: Float[Tensor, "batch ..."]) -> None:
        summed = batch.to(torch.float64).sum(dim=0)
        self.total = summed if self.total is None else self.total + summed
        self.count += batch.shape[0]

    def mean(self) -> Float[Tensor, "*shape"]:
        if self.total is None or self.count == 0:
            raise ValueError("no activations were accumulated; the prompt set for this mean is empty")
        return self.total / self.count


def difference_in_means(
    harmful_mean: Float[Tensor, "*shape d_model"], harmless_mean: Float[Tensor, "*shape d_model"]
) -> Float[Tensor, "*shape d_model"]:
    """``μ(harmful) - μ(harmless)``, in float64: one candidate direction per leading index."""
    return harmful_mean.to(torch.float64) - harmless_mean.to(torch.float64)


def unit(vectors: Float[Tensor, "*shape d_model"], eps: float = 1e-12) -> Float[Tensor, "*shape d_model"]:
    """``vectors`` scaled to unit norm along the last axis (a zero vector stays zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=eps)


def orthonormal_basis(
    directions: Float[Tensor, "*k d_model"], rtol: float = 1e-6
) -> Float[Tensor, "rank d_model"]:
    """An orthonormal basis (float64 rows) of the span of ``directions``, a vector or a ``(k, d_model)`` matrix.

    One direction keeps its sign; for several, the basis comes from an SVD, so dependent rows (singular
    values below ``rtol`` times the largest) are dropped instead of producing spurious directions. Zero
    vectors span nothing: the basis then has no rows, and callers that need a direction say so.

    >>> orthonormal_basis(torch.tensor([[3.0, 0.0], [6.0, 0.0]])).abs().tolist()
    [[1.0, 0.0]]
    """
    matrix = torch.as_tensor(directions).reshape(-1, directions.shape[-1]).to(torch.float64)
    if matrix.shape[0] == 0:
        return matrix
    if matrix.shape[0] == 1:
        norm = matrix.norm()
        return matrix / norm if norm > 0 else matrix[:0]
    _, singular, vh = torch.linalg.svd(matrix, full_matrices=False)
    keep = singular > rtol * singular.max() if singular.max() > 0 else singular > 0
    return vh[keep]


def random_direction(d_model: int, norm: float, seed: int) -> Float[Tensor, " d_model"]:
    """A Gaussian random vector of the given norm: the control for a direction of that norm."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(d_model, generator=generator, dtype=torch.float64)
    return vector / vector.norm() * norm


def random_subspace(k: int, d_model: int, seed: int) -> Float[Tensor, "k d_model"]:
    """``k`` orthonormal directions drawn uniformly (the control for an estimated subspace)."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(d_model, k, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(gaussian)
    return q.T.contiguous()
