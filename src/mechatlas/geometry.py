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

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")
Method = Literal["spectral", "probe"]
Structure = Literal["features", "subtypes"]
Z_ONE_SIDED_95 = 1.6448536269514722


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


# --- shared linear algebra ---------------------------------------------------------------------------
# Internals work on float64 torch tensors on the CPU: torch's BLAS keeps its speed when other processes
# share the cores, where a multi-threaded OpenBLAS (numpy's) can slow down tenfold.


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block. The matrices here are small (``d_model`` ≲ a few
    thousand), where a second thread gains little, and an OpenMP team on busy, shared cores can stall
    for tens of seconds waiting for a core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def single_threaded(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate ``function`` to run inside ``one_thread()``."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_thread():
            return function(*args, **kwargs)

    return wrapper


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


def orthonormal_basis(
    directions: Float[Tensor, "k d_model"] | np.ndarray, tol: float = 1e-8
) -> Float[Tensor, "rank d_model"]:
    """An orthonormal basis (rows) of the span of ``directions``, built in the order they are given."""
    matrix = _float64(directions)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if len(matrix) == 0:
        return torch.zeros(0, matrix.shape[-1], dtype=torch.float64)
    q, r = torch.linalg.qr(matrix.T)  # (d_model, k)
    diagonal = r.diagonal().abs()
    keep = diagonal > tol * max(float(diagonal.max()), 1e-30)
    return q[:, keep].T.contiguous()


def principal_angles(
    a: Float[Tensor, "k1 d_model"] | np.ndarray, b: Float[Tensor, "k2 d_model"] | np.ndarray
) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of the rows of ``a`` and of ``b``."""
    qa, qb = orthonormal_basis(a), orthonormal_basis(b)
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


def random_subspace(k: int, d_model: int, seed: int) -> Float[Tensor, "k d_model"]:
    """``k`` orthonormal directions drawn uniformly (the control for an estimated subspace)."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(d_model, k, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(gaussian)
    return q.T.contiguous()


def cosine_matrix(directions: Float[Tensor, "m d_model"] | np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities of the rows of ``directions``, in float64."""
    matrix = _float64(directions)
    unit = matrix / matrix.norm(dim=1, keepdim=True).clamp(min=1e-30)
    return np.asarray((unit @ unit.T).numpy())


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


def _null_max_eigenvalues(
    y: Tensor, n_harmful: int, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """Largest excess eigenvalue under ``n_permutations`` random relabellings (class sizes kept)."""
    out = np.zeros(n_permutations)
    if y.shape[1] == 0:
        return out
    for i in range(n_permutations):
        out[i] = _excess_spectrum(y[_index(rng.permutation(len(y)))], n_harmful)[0]
    return out


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
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap counts and participation ratios from rank-wise *centred* resampled spectra.

    Resampling prompts with replacement duplicates rows, which inflates the noise eigenvalues of a
    resample (its effective size is about 0.63 n) but not the signal ones. Judged against the original
    null threshold, resamples over-count; judged against a null of their own size, they under-count (less
    power). So the bootstrap is used for spread only: each rank's resampled eigenvalue is shifted by that
    rank's bootstrap bias (mean over resamples minus the observed value), and the centred spectrum is
    compared with the observed permutation threshold.
    """
    rng = np.random.default_rng(seed)
    spectra = []
    for _ in range(n_bootstrap):
        hb = h[_index(rng.integers(0, len(h), len(h)))]
        bb = b[_index(rng.integers(0, len(b), len(b)))]
        pooled = torch.cat([hb, bb])
        whitener = fit_whitener(pooled, max_rank=min(max_rank, len(pooled) // 2), ridge=ridge)
        spectra.append(_excess_spectrum(whitener.transform(pooled), len(hb)))
    rank = min([len(eigenvalues), *(len(s) for s in spectra)])
    if rank == 0 or n_bootstrap == 0:
        return np.zeros(n_bootstrap), np.zeros(n_bootstrap)
    resampled = np.array([s[:rank] for s in spectra])  # (n_bootstrap, rank)
    centred = resampled - (resampled.mean(axis=0) - eigenvalues[:rank])
    counts, participation = zip(*(_count_and_participation(s, threshold, rank) for s in centred), strict=True)
    return np.array(counts, dtype=float), np.array(participation)


# --- the probe estimator (INLP) ----------------------------------------------------------------------


def logistic_regression(
    x: Float[Tensor, "n d"], y: Float[Tensor, " n"], *, l2: float, max_iter: int = 50
) -> Float[Tensor, " d_plus_1"]:
    """L2-regularised logistic regression by Newton's method, class-balanced; returns ``[w, bias]``.

    Minimises ``mean_i c_i·log(1 + exp(-s_i·(x_i·w + b))) + l2/2·|w|²`` with ``c_i`` weighting both
    classes equally. Newton steps are affine-invariant, so huge shared directions do not slow it down.
    """
    n, d = x.shape
    xa = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    n_pos = max(float(y.sum()), 1.0)
    weight = torch.where(y > 0.5, 0.5 * n / n_pos, 0.5 * n / max(n - n_pos, 1.0))
    penalty = torch.full((d + 1,), l2, dtype=x.dtype)
    penalty[-1] = 0.0
    w = torch.zeros(d + 1, dtype=x.dtype)
    for _ in range(max_iter):
        p = torch.sigmoid((xa @ w).clamp(-30, 30))
        gradient = xa.T @ (weight * (p - y)) / n + penalty * w
        hessian = (xa * (weight * p * (1 - p))[:, None]).T @ xa / n + torch.diag(penalty + 1e-10)
        step = torch.linalg.solve(hessian, gradient)
        w = w - step
        if float(step.abs().max()) < 1e-6 * max(1.0, float(w.abs().max())):
            break
    return w


def balanced_accuracy(scores: Tensor, y: Tensor) -> float:
    """Mean of the per-class accuracies of ``scores > 0`` (chance is 0.5 whatever the class sizes)."""
    positive = scores > 0
    return 0.5 * (float(positive[y > 0.5].double().mean()) + float((~positive[y < 0.5]).double().mean()))


def chance_threshold(n_positive: int, n_negative: int, margin: float = 0.0) -> float:
    """Held-out balanced accuracy at or below which a probe counts as chance.

    The larger of the accuracy a chance-level probe exceeds with probability 5% (one-sided, normal
    approximation) and ``0.5 + margin``.
    """
    significance = 0.5 + Z_ONE_SIDED_95 * 0.5 * math.sqrt(
        0.25 / max(n_positive, 1) + 0.25 / max(n_negative, 1)
    )
    return max(significance, 0.5 + margin)


def estimation_floor(d_model: int, n_fit: int) -> float:
    """Rough held-out accuracy that INLP's own estimation error leaves after removing a strong direction.

    A direction estimated from ``n_fit`` points in ``d_model`` dimensions misses by ``tan θ ≈ 2√(d/n)/Δ``,
    leaving a separation ``Δ·sin θ ≈ 2√(d/n)`` behind, which a perfect probe reads at ``Φ(√(d/n)) ≈
    0.5 + 0.4·√(d/n)``. Regularisation lowers it; it is reported so the margin can be judged.
    """
    return 0.5 + 0.4 * math.sqrt(d_model / max(n_fit, 1))


@dataclass(frozen=True)
class ProbeFit:
    """INLP: held-out accuracy before each removal, the removed directions and the count."""

    accuracies: tuple[float, ...]  # held-out balanced accuracy with 0, 1, 2, ... directions removed
    chance: float  # accuracy at or below which the probe counts as chance
    k: int  # directions removed before accuracy reached chance
    capped: bool  # True when max_k directions were removed and accuracy was still above chance
    directions: Float[Tensor, "k d_model"]  # the removed directions (orthonormal, activation space)


def _stratified_split(
    n_harmful: int, n_harmless: int, holdout: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (harmful first, then harmless) of a stratified fit/held-out split."""
    fit, held = [], []
    for offset, n in ((0, n_harmful), (n_harmful, n_harmless)):
        order = rng.permutation(n) + offset
        cut = max(1, round(n * holdout))
        held.append(order[:cut])
        fit.append(order[cut:])
    return np.concatenate(fit), np.concatenate(held)


def inlp(
    x_fit: Float[Tensor, "n_fit d_model"],
    y_fit: Float[Tensor, " n_fit"],
    x_held: Float[Tensor, "n_held d_model"],
    y_held: Float[Tensor, " n_held"],
    *,
    max_k: int,
    l2: float,
    chance_margin: float,
) -> ProbeFit:
    """Iterative nullspace projection (Ravfogel et al. 2020, arXiv 2004.07667) with held-out stopping.

    Data are centred on the fit mean and divided by the median per-coordinate s.d. (one scalar, so the
    geometry is unchanged and ``l2`` means the same at every scale). Each round fits a probe on the
    projected data, records its held-out balanced accuracy, and projects its weight direction out
    (``P ← P - vvᵀ``); an L2 probe's weights lie in the range of ``P``, so removed directions are
    orthonormal. The count is the number of rounds before accuracy falls to ``chance_threshold``.

    What the count means. With a binary label the class means differ along exactly one direction ``δ``,
    and removing ``δ`` alone already leaves nothing linearly decodable (equal class means is the
    condition for linear guardedness; Belrose et al., arXiv 2306.03819). INLP removes probe weights
    ``Σ⁻¹δ`` instead, which miss ``δ`` when the noise is anisotropic, so it needs one round per
    direction of the smallest noise-invariant subspace containing ``δ``: features of different scales
    are peeled one per round, but sub-types spread symmetrically around the harmless mean (a mixture
    whose class means differ along one direction) are one round, however many directions they span,
    and so are equal-scale features.

    Why the margin. A probe fitted on ``n`` points misses its direction by ``θ ~ √(d/n)/Δ`` and leaves
    ``sin θ`` of the signal behind, which later rounds find again; that residual is detectable at the
    same rate as real signal, so a pure significance test over-counts whenever ``d`` is not ≪ ``n``.
    Accuracy within ``chance_margin`` of 0.5 therefore counts as chance (see ``estimation_floor``).
    ``l2`` matters for the same reason: a weakly regularised probe carries more noise.
    """
    centre = x_fit.mean(dim=0)
    scale = float(x_fit.std(dim=0).median())
    scale = scale if scale > 0 else 1.0
    fit, held = (x_fit - centre) / scale, (x_held - centre) / scale
    d = fit.shape[1]
    projection = torch.eye(d, dtype=torch.float64)
    chance = chance_threshold(int(y_held.sum()), int(len(y_held) - y_held.sum()), chance_margin)
    accuracies: list[float] = []
    removed: list[Tensor] = []
    for _ in range(max_k + 1):
        w = logistic_regression(fit @ projection, y_fit, l2=l2)
        accuracies.append(balanced_accuracy(held @ projection @ w[:-1] + w[-1], y_held))
        if accuracies[-1] <= chance or len(removed) == max_k:
            break
        direction = projection @ w[:-1]
        norm = float(direction.norm())
        if norm < 1e-12:  # the probe found nothing to remove
            break
        removed.append(direction / norm)
        projection = projection - torch.outer(removed[-1], removed[-1])
    return ProbeFit(
        accuracies=tuple(accuracies),
        chance=chance,
        k=len(removed),
        capped=accuracies[-1] > chance,
        directions=torch.stack(removed) if removed else torch.zeros(0, d, dtype=torch.float64),
    )


def _labelled(h: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    x = torch.cat([h, b])
    y = torch.cat([torch.ones(len(h), dtype=torch.float64), torch.zeros(len(b), dtype=torch.float64)])
    return x, y


@single_threaded
def probe_fit(
    harmful: Float[Tensor, "n_harmful d_model"] | np.ndarray,
    harmless: Float[Tensor, "n_harmless d_model"] | np.ndarray,
    *,
    max_k: int = 16,
    l2: float = 0.1,
    chance_margin: float = 0.1,
    holdout: float = 0.3,
    seed: int = 0,
) -> ProbeFit:
    """INLP on a seeded, stratified fit/held-out split of the prompts."""
    h, b = _float64(harmful), _float64(harmless)
    x, y = _labelled(h, b)
    fit, held = (_index(i) for i in _stratified_split(len(h), len(b), holdout, np.random.default_rng(seed)))
    return inlp(x[fit], y[fit], x[held], y[held], max_k=max_k, l2=l2, chance_margin=chance_margin)


def _probe_bootstrap(
    h: Tensor,
    b: Tensor,
    *,
    n_bootstrap: int,
    max_k: int,
    l2: float,
    chance_margin: float,
    holdout: float,
    seed: int,
) -> np.ndarray:
    """Bootstrap INLP counts. The split is made first and each side resampled on its own, so a
    duplicated prompt never sits on both sides (which would leak and inflate held-out accuracy)."""
    rng = np.random.default_rng(seed)
    x, y = _labelled(h, b)
    labels = y.numpy()
    fit, held = _stratified_split(len(h), len(b), holdout, np.random.default_rng(seed - 1))
    counts = []
    for _ in range(n_bootstrap):
        f = _index(_resample_stratified(fit, labels, rng))
        t = _index(_resample_stratified(held, labels, rng))
        counts.append(inlp(x[f], y[f], x[t], y[t], max_k=max_k, l2=l2, chance_margin=chance_margin).k)
    return np.array(counts, dtype=float)


def _resample_stratified(index: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    parts = []
    for label in (1.0, 0.0):
        members = index[labels[index] == label]
        parts.append(members[rng.integers(0, len(members), len(members))])
    return np.concatenate(parts)


# --- the public estimator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimensionality:
    """A dimension estimate with its 95% bootstrap CI over prompts."""

    method: str
    k: int
    ci: tuple[float, float]
    n_harmful: int
    n_harmless: int
    n_bootstrap: int
    fit: SpectralFit | ProbeFit
    bootstrap_k: np.ndarray = field(repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. the participation ratio and its CI

    def summary(self) -> dict[str, Any]:
        """The numbers a metrics file records (JSON-ready)."""
        out: dict[str, Any] = {
            "k": self.k,
            "ci95": [float(self.ci[0]), float(self.ci[1])],
            "n_harmful": self.n_harmful,
            "n_harmless": self.n_harmless,
            "n_bootstrap": self.n_bootstrap,
        }
        out.update(self.extra)
        return out


def _percentile_ci(values: np.ndarray) -> tuple[float, float]:
    if len(values) == 0:
        return (math.nan, math.nan)
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


@single_threaded
def subspace_dimensionality(
    harmful: Float[Tensor, "n_harmful d_model"],
    harmless: Float[Tensor, "n_harmless d_model"],
    method: Method = "spectral",
    seed: int = 0,
    *,
    n_bootstrap: int = 100,
    n_permutations: int = 100,
    max_k: int = 16,
    max_rank: int = 256,
    ridge: float = 1e-3,
    probe_l2: float = 0.1,
    probe_chance_margin: float = 0.1,
    probe_holdout: float = 0.3,
) -> Dimensionality:
    """How many dimensions separate ``harmful`` from ``harmless`` activations, with a bootstrap CI.

    ``method="spectral"``: parallel analysis of the whitened excess second moment; counts directions
    along which the class distributions differ; CI from rank-wise centred bootstrap spectra.
    ``method="probe"``: INLP; counts orthogonal cuts needed to erase linear decodability (blind to
    sub-type mixtures and to equal-scale features); percentile bootstrap CI. See the module docstring.

    >>> data = planted_activations(3, d_model=64, n_per_class=400, seed=1)
    >>> result = subspace_dimensionality(data.harmful, data.harmless, method="spectral", n_bootstrap=10)
    >>> result.k, result.ci[0] <= result.k <= result.ci[1]
    (3, True)
    """
    h, b = _float64(harmful), _float64(harmless)
    if h.ndim != 2 or b.ndim != 2 or h.shape[1] != b.shape[1]:
        raise ValueError(
            f"need two (n, d_model) matrices with the same d_model, got {tuple(h.shape)} and {tuple(b.shape)}"
        )
    if len(h) < 4 or len(b) < 4:
        raise ValueError(f"need at least 4 prompts per class, got {len(h)} harmful and {len(b)} harmless")
    if method == "spectral":
        fit = spectral_fit(h, b, n_permutations=n_permutations, max_rank=max_rank, ridge=ridge, seed=seed)
        counts, participation = _spectral_bootstrap(
            h,
            b,
            fit.eigenvalues,
            fit.threshold,
            n_bootstrap=n_bootstrap,
            max_rank=max_rank,
            ridge=ridge,
            seed=seed + 1,
        )
        extra: dict[str, Any] = {
            "ci_method": "bootstrap over prompts, rank-wise centred spectra against the permutation threshold",
            "participation_ratio": fit.participation_ratio,
            "participation_ratio_ci95": list(_percentile_ci(participation)),
            "null_threshold": fit.threshold,
            "n_permutations": n_permutations,
            "top_eigenvalues": [float(v) for v in fit.eigenvalues[:64]],
            "null_max_quantiles": {
                q: float(np.quantile(fit.null_max, float(q))) for q in ("0.05", "0.5", "0.95")
            },
            "whitened_rank": fit.rank,
        }
        return Dimensionality(
            "spectral", fit.k, _percentile_ci(counts), len(h), len(b), n_bootstrap, fit, counts, extra
        )
    if method == "probe":
        probe = probe_fit(
            h,
            b,
            max_k=max_k,
            l2=probe_l2,
            chance_margin=probe_chance_margin,
            holdout=probe_holdout,
            seed=seed,
        )
        counts = _probe_bootstrap(
            h,
            b,
            n_bootstrap=n_bootstrap,
            max_k=max_k,
            l2=probe_l2,
            chance_margin=probe_chance_margin,
            holdout=probe_holdout,
            seed=seed + 1,
        )
        n_fit = len(h) + len(b) - round(len(h) * probe_holdout) - round(len(b) * probe_holdout)
        extra = {
            "ci_method": "percentile bootstrap over prompts (fit and held-out sides resampled separately)",
            "accuracy_curve": [float(a) for a in probe.accuracies],
            "chance_threshold": probe.chance,
            "estimation_floor": estimation_floor(h.shape[1], n_fit),
            "capped": probe.capped,
            "l2": probe_l2,
        }
        return Dimensionality(
            "probe", probe.k, _percentile_ci(counts), len(h), len(b), n_bootstrap, probe, counts, extra
        )
    raise ValueError(f"unknown method {method!r}; use 'spectral' or 'probe'")


# --- domain geometry -----------------------------------------------------------------------------


def domain_directions(
    harmful: Float[Tensor, "n_harmful d_model"],
    domains: Sequence[str],
    harmless_mean: Float[Tensor, " d_model"],
) -> dict[str, Float[Tensor, " d_model"]]:
    """Difference in means per harm domain: ``μ(harmful in domain) - μ(harmless)``, in float64."""
    h = _float64(harmful)
    labels = np.asarray(domains)
    return {
        domain: h[_index(np.flatnonzero(labels == domain))].mean(dim=0) - _float64(harmless_mean)
        for domain in sorted(set(domains))
    }


def leave_one_out_directions(
    harmful: Float[Tensor, "n_harmful d_model"],
    domains: Sequence[str],
    harmless_mean: Float[Tensor, " d_model"],
) -> dict[str, Float[Tensor, " d_model"]]:
    """For each domain, the difference in means from the harmful prompts of every *other* domain."""
    h = _float64(harmful)
    labels = np.asarray(domains)
    return {
        domain: h[_index(np.flatnonzero(labels != domain))].mean(dim=0) - _float64(harmless_mean)
        for domain in sorted(set(domains))
    }


def projection_summary(
    activations: Float[Tensor, "n d_model"],
    direction: Float[Tensor, " d_model"],
    *,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """Mean scalar projection of rows onto the unit ``direction``, with n and a bootstrap CI."""
    unit = _float64(direction) / _float64(direction).norm().clamp(min=1e-30)
    values = (_float64(activations) @ unit).numpy()
    if len(values) == 0:
        return {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0, "values": values}
    rng = np.random.default_rng(seed)
    means = np.array([values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_bootstrap)])
    return {
        "mean": float(values.mean()),
        "ci95": list(_percentile_ci(means)),
        "n": len(values),
        "values": values,
    }


def relative_position(
    probe_values: np.ndarray, low_values: np.ndarray, high_values: np.ndarray, *, n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """Where ``probe`` rows sit between the ``low`` and ``high`` group means on one axis (0 = low, 1 = high).

    Used for the over-refusal controls: alarming-but-harmless prompts between harmless (0) and harmful
    (1). The CI resamples all three groups.
    """

    def position(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
        span = hi.mean() - lo.mean()
        return float((p.mean() - lo.mean()) / span) if abs(span) > 1e-12 else math.nan

    if min(len(probe_values), len(low_values), len(high_values)) == 0:
        return {
            "value": math.nan,
            "ci95": [math.nan, math.nan],
            "n": [len(probe_values), len(low_values), len(high_values)],
        }
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        draws.append(
            position(
                probe_values[rng.integers(0, len(probe_values), len(probe_values))],
                low_values[rng.integers(0, len(low_values), len(low_values))],
                high_values[rng.integers(0, len(high_values), len(high_values))],
            )
        )
    finite = np.array([d for d in draws if np.isfinite(d)])
    return {
        "value": position(probe_values, low_values, high_values),
        "ci95": list(_percentile_ci(finite)),
        "n": [len(probe_values), len(low_values), len(high_values)],
    }


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of scores separating ``positive`` from ``negative``: the share of
    (positive, negative) pairs ordered correctly, ties counting one half (the Mann-Whitney statistic)."""
    if len(positive) == 0 or len(negative) == 0:
        return math.nan
    p, n = np.asarray(positive, dtype=np.float64)[:, None], np.asarray(negative, dtype=np.float64)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def auc_with_ci(positive: np.ndarray, negative: np.ndarray, *, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """``auc`` with a percentile-bootstrap CI resampling both groups, and the group sizes."""
    rng = np.random.default_rng(seed)
    draws = [
        auc(
            positive[rng.integers(0, len(positive), len(positive))],
            negative[rng.integers(0, len(negative), len(negative))],
        )
        for _ in range(n_bootstrap if len(positive) and len(negative) else 0)
    ]
    return {
        "value": auc(positive, negative),
        "ci95": list(_percentile_ci(np.array(draws))),
        "n": [len(positive), len(negative)],
    }
