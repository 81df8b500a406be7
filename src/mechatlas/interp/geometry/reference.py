"""The spectral estimator as it was before it moved to sample space: the reference the fast one is checked against.

Everything here works in activation space, one resample at a time, on one thread: each whitening is a
``d x d`` eigenvalue problem (O(d³)), which is what made a d = 4096 call take about half an hour. It is
kept, like ``score_candidates_one_at_a_time``, so that tests can show the fast estimator gives the same
answers and ``make bench`` can report the speed-up; nothing in the pipeline calls it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.geometry.spectral import _count_and_participation, _excess_spectrum
from mechatlas.interp.geometry.subspaces import _float64, _index
from mechatlas.interp.threads import single_threaded
from mechatlas.stats import percentile_ci


def dense_whitened(x: Tensor, *, max_rank: int, ridge: float, rel_tol: float = 1e-9) -> Tensor:
    """Whitened coordinates of ``x`` from the ``d x d`` covariance (the original ``fit_whitener``)."""
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / max(len(x) - 1, 1)
    eigenvalues, vectors = torch.linalg.eigh(cov)
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
    top = float(eigenvalues[0]) if len(eigenvalues) else 0.0
    keep = min(int((eigenvalues > rel_tol * top).sum()) if top > 0 else 0, max_rank)
    eigenvalues, vectors = eigenvalues[:keep], vectors[:, :keep]
    scale = torch.sqrt(eigenvalues + ridge * (eigenvalues.mean() if keep else 0.0))
    return centred @ (vectors / scale)


@dataclass(frozen=True)
class ReferenceSpectral:
    k: int
    ci: tuple[float, float]
    participation_ratio: float
    participation_ci: tuple[float, float]
    threshold: float
    eigenvalues: np.ndarray
    bootstrap_k: np.ndarray


@single_threaded
def spectral_dimensionality_reference(
    harmful: Float[Tensor, "n_harmful d_model"],
    harmless: Float[Tensor, "n_harmless d_model"],
    *,
    n_bootstrap: int = 100,
    n_permutations: int = 100,
    max_rank: int = 256,
    ridge: float = 1e-3,
    seed: int = 0,
) -> ReferenceSpectral:
    """``subspace_dimensionality(method="spectral")`` computed the original way (same seeds, same draws)."""
    h, b = _float64(harmful), _float64(harmless)
    pooled = torch.cat([h, b])
    y = dense_whitened(pooled, max_rank=min(max_rank, len(pooled) // 2), ridge=ridge)
    eigenvalues = _excess_spectrum(y, len(h))
    rng = np.random.default_rng(seed)
    null_max = np.zeros(n_permutations)
    if y.shape[1]:
        for i in range(n_permutations):
            null_max[i] = _excess_spectrum(y[_index(rng.permutation(len(y)))], len(h))[0]
    threshold = float(np.quantile(null_max, 0.95)) if len(null_max) else math.inf
    k, participation = _count_and_participation(eigenvalues, threshold, y.shape[1])
    rng = np.random.default_rng(seed + 1)
    spectra = []
    for _ in range(n_bootstrap):
        hb = h[_index(rng.integers(0, len(h), len(h)))]
        bb = b[_index(rng.integers(0, len(b), len(b)))]
        both = torch.cat([hb, bb])
        spectra.append(
            _excess_spectrum(
                dense_whitened(both, max_rank=min(max_rank, len(both) // 2), ridge=ridge), len(hb)
            )
        )
    rank = min([len(eigenvalues), *(len(s) for s in spectra)])
    if rank == 0 or n_bootstrap == 0:
        counts, ratios = np.zeros(n_bootstrap), np.zeros(n_bootstrap)
    else:
        resampled = np.array([s[:rank] for s in spectra])
        centred = resampled - (resampled.mean(axis=0) - eigenvalues[:rank])
        pairs = [_count_and_participation(s, threshold, rank) for s in centred]
        counts = np.array([c for c, _ in pairs], dtype=float)
        ratios = np.array([p for _, p in pairs])
    return ReferenceSpectral(
        k=k,
        ci=percentile_ci(counts),
        participation_ratio=participation,
        participation_ci=percentile_ci(ratios),
        threshold=threshold,
        eigenvalues=eigenvalues,
        bootstrap_k=counts,
    )
