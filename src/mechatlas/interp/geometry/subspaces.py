"""The geometry of refusal: how many dimensions separate harmful from harmless activations.

Arditi et al. (arXiv 2406.11717) found refusal mediated by one direction; Wollschläger et al.
(arXiv 2502.17420) found multi-dimensional concept cones; Zhao et al. (arXiv 2507.11878) found that the
model's judgement of harmfulness sits at a different token from its decision to refuse. This module
holds the pure-tensor half of the question "how many dimensions does refusal occupy?": estimators that
take two sets of activations and return a dimension with a bootstrap CI, a generator of activations with
a planted answer to test them on, and the geometry of per-domain directions. Everything that needs a
model (ablating subspaces and measuring refusal) lives in ``mechatlas.causal_geometry``; the stage
that runs it all on a model's saved activations is ``mechatlas.dimensionality``.

What "dimension" means depends on the estimator, and they can disagree for good reasons:

- **spectral** counts the directions along which the *distributions* of the two classes differ, in mean
  or in spread, relative to the noise both share. The statistic is the spectrum of the harmful class's
  excess second moment about the harmless mean, in coordinates whitened by the pooled covariance::

      D = E_harmful[(y - μ_harmless)(y - μ_harmless)ᵀ] - Cov_harmless = Cov_h - Cov_b + δδᵀ

  A direction that both classes share, however much variance it carries (real residual streams have a
  few huge ones), cancels in ``D``; whitening makes the sampling noise of every direction comparable, so
  those huge directions do not dominate the noise either. The count is the number of eigenvalues above
  the 95th percentile of the *largest* eigenvalue under label permutation (Horn's parallel analysis,
  1965, in the max-statistic form of Buja and Eyuboglu, 1992, which stays calibrated when the signal
  pushes the noise eigenvalues down the ranking). The participation ratio of the excess over that null
  threshold, ``(Σe)² / Σe²``, is a soft version that weights directions by strength.
- **probe** is iterative nullspace projection (INLP, Ravfogel et al., arXiv 2004.07667): fit a
  logistic-regression probe, remove its weight direction by orthogonal projection, and repeat until the
  held-out balanced accuracy is back at chance (within ``chance_margin``). It counts *Euclidean-orthogonal
  cuts needed to erase linear decodability*, which is not the same thing. With a binary label the class
  means differ along exactly one direction, and removing that one direction already erases every linear
  trace (Belrose et al., arXiv 2306.03819); INLP needs more cuts only because its probe weights
  (``Σ⁻¹δ``) miss that direction when the noise is anisotropic. So it can count features of different
  scales, which it peels one per cut, but it **cannot** count (i) a mixture whose class means differ along
  only one direction, such as harm sub-types spread around the harmless mean, or (ii) features of equal
  scale: both are one cut, however many directions they span. And a probe fitted on ``n`` points in
  ``d`` dimensions misses its direction by about ``√(d/n)``, leaving a residual the next round finds
  again, so without the margin INLP over-counts. Its count is reported with its accuracy curve.
- **causal** (in ``mechatlas.causal_geometry``) counts the directions the model *uses*: the smallest
  ``k`` whose ablation brings refusal below a threshold. It is the one that answers the question about
  refusal; the other two bound it from the representation side.

CIs are bootstrap over prompts: for the spectral count, rank-wise centred resampled spectra against the
observed permutation threshold (see ``_spectral_bootstrap`` for why); for INLP, a percentile bootstrap
with the fit and held-out prompts resampled separately.

Sums are in float64; every randomised call takes an explicit seed.

>>> data = planted_activations(2, d_model=32, n_per_class=300, seed=0)
>>> subspace_dimensionality(data.harmful, data.harmless, method="spectral", n_bootstrap=10).k
2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.directions import orthonormal_basis


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
    has the same post-instruction activation, and the rank is then 0).
    """
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / max(len(x) - 1, 1)
    eigenvalues, vectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
    top = float(eigenvalues[0]) if len(eigenvalues) else 0.0
    keep = min(int((eigenvalues > rel_tol * top).sum()) if top > 0 else 0, max_rank)
    eigenvalues, vectors = eigenvalues[:keep], vectors[:, :keep]
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
