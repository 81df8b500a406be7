"""The spectral estimator: how many directions the two classes' distributions differ along.

The statistic is the spectrum of the harmful class's excess second moment about the harmless mean,
``Cov_h - Cov_b + δδᵀ``, in whitened coordinates; the count is the number of eigenvalues above the 95th
percentile of the largest eigenvalue under label permutation (Horn 1965; Buja and Eyuboglu 1992). See
``mechatlas.interp.geometry`` for why, and ``_spectral_bootstrap`` for how its CI is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.geometry.subspaces import _float64, _index, fit_whitener
from mechatlas.interp.threads import parallel_map, single_threaded

Z_ONE_SIDED_95 = 1.6448536269514722


# --- the spectral estimator -----------------------------------------------------------------------


def _excess_second_moment(y_harmful: Tensor, y_harmless: Tensor) -> Tensor:
    """``Cov_h - Cov_b + δδᵀ``: the harmful class's second moment about the harmless mean, minus Cov_b."""
    mean_h, mean_b = y_harmful.mean(dim=0), y_harmless.mean(dim=0)
    ch, cb = y_harmful - mean_h, y_harmless - mean_b
    delta = mean_h - mean_b
    excess = ch.T @ ch / len(ch) - cb.T @ cb / len(cb) + torch.outer(delta, delta)
    return (excess + excess.T) / 2


def _excess_spectrum(y: Tensor, n_harmful: int) -> np.ndarray:
    """Eigenvalues (descending) of the excess second moment, harmful rows first in ``y``."""
    if y.shape[1] == 0:
        return np.zeros(0)
    return np.asarray(
        torch.linalg.eigvalsh(_excess_second_moment(y[:n_harmful], y[n_harmful:])).flip(0).numpy()
    )


def _batched_excess_max(y: Tensor, n_harmful: int, orders: np.ndarray) -> np.ndarray:
    """Largest excess eigenvalue for each row of ``orders`` (a relabelling: harmful rows first)."""
    rows = y[_index(orders)]  # (B, n, rank)
    yh, yb = rows[:, :n_harmful], rows[:, n_harmful:]
    mean_h, mean_b = yh.mean(dim=1, keepdim=True), yb.mean(dim=1, keepdim=True)
    ch, cb = yh - mean_h, yb - mean_b
    delta = (mean_h - mean_b).squeeze(1)  # (B, rank)
    excess = (
        ch.transpose(1, 2) @ ch / n_harmful
        - cb.transpose(1, 2) @ cb / yb.shape[1]
        + delta[:, :, None] * delta[:, None, :]
    )
    excess = (excess + excess.transpose(1, 2)) / 2
    return np.asarray(torch.linalg.eigvalsh(excess)[:, -1].numpy())


def _null_max_eigenvalues(
    y: Tensor,
    n_harmful: int,
    n_permutations: int,
    rng: np.random.Generator,
    *,
    chunk: int = 8,
    workers: int | None = None,
) -> np.ndarray:
    """Largest excess eigenvalue under ``n_permutations`` random relabellings (class sizes kept).

    The relabellings are drawn in order from ``rng``, then evaluated ``chunk`` at a time as batched
    matrix products and batched eigenvalue problems, the chunks spread over every core.
    """
    if y.shape[1] == 0 or n_permutations == 0:
        return np.zeros(n_permutations)
    orders = np.stack([rng.permutation(len(y)) for _ in range(n_permutations)])
    chunks = [orders[s : s + chunk] for s in range(0, n_permutations, chunk)]
    return np.concatenate(parallel_map(lambda o: _batched_excess_max(y, n_harmful, o), chunks, workers))


def _count_and_participation(eigenvalues: np.ndarray, threshold: float, max_count: int) -> tuple[int, float]:
    excess = np.clip(eigenvalues - threshold, 0.0, None)
    count = min(int((excess > 0).sum()), max_count)
    total = float(excess.sum())
    participation = total**2 / float((excess**2).sum()) if total > 0 else 0.0
    return count, participation


@dataclass(frozen=True)
class SpectralFit:
    """The excess-second-moment spectrum of one harmful/harmless split, with its permutation null."""

    eigenvalues: np.ndarray  # (rank,) descending
    null_max: np.ndarray  # (n_permutations,) largest eigenvalue under each label permutation
    threshold: float  # 95th percentile of null_max
    k: int  # eigenvalues above threshold (parallel analysis)
    participation_ratio: float  # (Σe)²/Σe² of the excess e = max(λ - threshold, 0)
    patterns: Float[Tensor, "n d_model"]  # unit activation-space directions of the top eigenvectors
    rank: int  # whitened rank used


@single_threaded
def spectral_fit(
    harmful: Float[Tensor, "n_harmful d_model"] | np.ndarray,
    harmless: Float[Tensor, "n_harmless d_model"] | np.ndarray,
    *,
    n_permutations: int = 100,
    max_rank: int = 256,
    ridge: float = 1e-3,
    n_patterns: int = 64,
    seed: int = 0,
) -> SpectralFit:
    """Parallel analysis of the excess second moment (see the module docstring for why this statistic).

    ``patterns`` are the top eigenvectors mapped back to activation space (what a displacement along each
    looks like in the residual stream), unit norm, signed so that harmful rows project above harmless
    ones on average; the first is, up to noise, the difference-in-means direction when refusal is 1-d.
    The pooled rank is capped at ``min(max_rank, n_total // 2)`` so the null stays informative when
    ``d_model`` is large.
    """
    h, b = _float64(harmful), _float64(harmless)
    pooled = torch.cat([h, b])
    whitener = fit_whitener(pooled, max_rank=min(max_rank, len(pooled) // 2), ridge=ridge)
    y = whitener.transform(pooled)
    n_h = len(h)
    if whitener.rank:
        eigenvalues_t, vectors = torch.linalg.eigh(_excess_second_moment(y[:n_h], y[n_h:]))
        eigenvalues, vectors = eigenvalues_t.flip(0).numpy(), vectors.flip(1)
    else:
        eigenvalues, vectors = np.zeros(0), torch.zeros(0, 0, dtype=torch.float64)
    null_max = _null_max_eigenvalues(y, n_h, n_permutations, np.random.default_rng(seed))
    threshold = float(np.quantile(null_max, 0.95)) if len(null_max) else math.inf
    k, participation = _count_and_participation(eigenvalues, threshold, whitener.rank)
    top = min(n_patterns, whitener.rank)
    patterns = (whitener.patterns @ vectors[:, :top]).T  # (top, d_model)
    patterns = patterns / patterns.norm(dim=1, keepdim=True).clamp(min=1e-30)
    sign = torch.sign(patterns @ (h.mean(dim=0) - b.mean(dim=0)))
    patterns = patterns * torch.where(sign == 0, 1.0, sign)[:, None]
    return SpectralFit(
        eigenvalues=eigenvalues,
        null_max=null_max,
        threshold=threshold,
        k=k,
        participation_ratio=participation,
        patterns=patterns.contiguous(),
        rank=whitener.rank,
    )


def _spectral_bootstrap(
    h: Tensor,
    b: Tensor,
    eigenvalues: np.ndarray,
    threshold: float,
    *,
    n_bootstrap: int,
    max_rank: int,
    ridge: float,
    seed: int,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap counts and participation ratios from rank-wise *centred* resampled spectra.

    Resampling prompts with replacement duplicates rows, which inflates the noise eigenvalues of a
    resample (its effective size is about 0.63 n) but not the signal ones. Judged against the original
    null threshold, resamples over-count; judged against a null of their own size, they under-count (less
    power). So the bootstrap is used for spread only: each rank's resampled eigenvalue is shifted by that
    rank's bootstrap bias (mean over resamples minus the observed value), and the centred spectrum is
    compared with the observed permutation threshold.

    The resamples are drawn in order from one generator, then evaluated on every core. With fewer
    prompts than dimensions each resample is whitened in sample space from the pooled Gram matrix
    (computed once): a resample is its distinct prompts with multiplicities, so its spectrum costs one
    eigenvalue problem of the number of distinct prompts (about 0.63 n), and nothing of size ``d``.
    """
    rng = np.random.default_rng(seed)
    draws = [(rng.integers(0, len(h), len(h)), rng.integers(0, len(b), len(b))) for _ in range(n_bootstrap)]
    pooled = torch.cat([h, b])
    if len(pooled) < pooled.shape[1]:
        gram = pooled @ pooled.T  # (n, n) raw inner products; each resample centres its own
        spectra = parallel_map(
            lambda d: _gram_resample_spectrum(gram, len(h), d[0], len(h) + d[1], max_rank, ridge),
            draws,
            workers,
        )
    else:
        spectra = parallel_map(
            lambda d: _feature_resample_spectrum(h, b, d[0], d[1], max_rank, ridge), draws, workers
        )
    rank = min([len(eigenvalues), *(len(s) for s in spectra)])
    if rank == 0 or n_bootstrap == 0:
        return np.zeros(n_bootstrap), np.zeros(n_bootstrap)
    resampled = np.array([s[:rank] for s in spectra])  # (n_bootstrap, rank)
    centred = resampled - (resampled.mean(axis=0) - eigenvalues[:rank])
    counts, participation = zip(*(_count_and_participation(s, threshold, rank) for s in centred), strict=True)
    return np.array(counts, dtype=float), np.array(participation)


def _feature_resample_spectrum(
    h: Tensor, b: Tensor, rows_h: np.ndarray, rows_b: np.ndarray, max_rank: int, ridge: float
) -> np.ndarray:
    """One resample's excess spectrum, whitened in activation space (``d <= n``)."""
    hb, bb = h[_index(rows_h)], b[_index(rows_b)]
    pooled = torch.cat([hb, bb])
    whitener = fit_whitener(pooled, max_rank=min(max_rank, len(pooled) // 2), ridge=ridge)
    return _excess_spectrum(whitener.transform(pooled), len(hb))


def _gram_resample_spectrum(
    gram: Tensor,
    n_harmful: int,
    rows_h: np.ndarray,
    rows_b: np.ndarray,
    max_rank: int,
    ridge: float,
    rel_tol: float = 1e-9,
) -> np.ndarray:
    """One resample's excess spectrum in sample space, from the raw Gram matrix of the pooled rows.

    The resample is its distinct rows ``u`` with multiplicities ``w`` (``n = Σw``). With
    ``A_i = √w_i (x_i - m)`` (``m`` the resample mean), the covariance ``AᵀA/(n-1)`` and the Gram
    ``AAᵀ/(n-1)`` share their nonzero eigenvalues ``λ``; for an eigenvector ``e`` of the latter, row
    ``i``'s whitened coordinate is ``e_i √((n-1)λ) / √w_i / √(λ + ridge·mean λ)``, exactly what
    ``fit_whitener`` gives on the resampled rows. Harmful rows are those below ``n_harmful``.
    """
    rows = np.concatenate([rows_h, rows_b])
    n = len(rows)
    unique, counts = np.unique(rows, return_counts=True)
    w = torch.from_numpy(counts.astype(np.float64))
    index = _index(unique)
    inner = gram.index_select(0, index).index_select(1, index)
    row_mean = inner @ w / n  # x_i · m
    centred = inner - row_mean[:, None] - row_mean[None, :] + float(w @ row_mean) / n
    root_w = w.sqrt()
    eigenvalues, vectors = torch.linalg.eigh(root_w[:, None] * centred * root_w[None, :] / max(n - 1, 1))
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
    top = float(eigenvalues[0]) if len(eigenvalues) else 0.0
    keep = min(int((eigenvalues > rel_tol * top).sum()) if top > 0 else 0, max_rank, n // 2)
    if keep == 0:
        return np.zeros(0)
    eigenvalues, vectors = eigenvalues[:keep], vectors[:, :keep]
    scale = torch.sqrt(eigenvalues + ridge * eigenvalues.mean())
    y = vectors * torch.sqrt(eigenvalues * max(n - 1, 1)) / scale / root_w[:, None]  # (distinct, keep)
    harmful = torch.from_numpy(unique < n_harmful)
    excess = _weighted_excess(y[harmful], w[harmful], y[~harmful], w[~harmful])
    return np.asarray(torch.linalg.eigvalsh(excess).flip(0).numpy())


def _weighted_excess(yh: Tensor, wh: Tensor, yb: Tensor, wb: Tensor) -> Tensor:
    """``_excess_second_moment`` of rows repeated ``w`` times, without repeating them."""
    mean_h, mean_b = wh @ yh / wh.sum(), wb @ yb / wb.sum()
    ch, cb = yh - mean_h, yb - mean_b
    delta = mean_h - mean_b
    excess = (
        (ch * wh[:, None]).T @ ch / wh.sum()
        - (cb * wb[:, None]).T @ cb / wb.sum()
        + torch.outer(delta, delta)
    )
    return (excess + excess.T) / 2
