"""Iterative nullspace projection (INLP, Ravfogel et al., arXiv 2004.07667) and its probe count.

Fit a logistic-regression probe, project its weight direction out, repeat until held-out balanced
accuracy is back at chance (within a margin that accounts for a probe's ``√(d/n)`` estimation error).
What this count can and cannot see is explained in ``mechatlas.interp.geometry``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.errors import MechatlasError
from mechatlas.interp.geometry.spectral import Z_ONE_SIDED_95
from mechatlas.interp.geometry.subspaces import _float64, _index
from mechatlas.interp.threads import parallel_map, single_threaded

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


class EstimatorDeclined(MechatlasError):
    """An estimator asked to count where its count would mean nothing; the message says why."""


def check_probe_regime(d_model: int, n_fit: int) -> None:
    """Decline INLP when ``d_model >= n_fit``: there its count measures estimation error, not structure.

    With at least as many dimensions as fit points the two classes are linearly separable by chance, an
    L2 probe's direction misses the class-mean difference by about ``√(d/n)`` (``estimation_floor`` is
    then above 1), and every later round finds that residual again; held-out accuracy falls to chance
    only when the margin is larger than the signal. No margin separates the two in this regime, so the
    estimator declines instead of returning a number.
    """
    if d_model >= n_fit:
        raise EstimatorDeclined(
            f"INLP declined: d_model = {d_model} is not below the {n_fit} prompts the probe is fitted on, so a "
            f"probe separates them by chance and its direction misses by about √(d/n) (estimation floor "
            f"{estimation_floor(d_model, n_fit):.2f}); its count would measure that error, not refusal. Use the "
            "spectral and causal estimates at this width, or fit the probe on more than d_model prompts"
        )


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
    """INLP on a seeded, stratified fit/held-out split of the prompts; declines (``EstimatorDeclined``)
    when there are not more fit prompts than dimensions (``check_probe_regime``)."""
    h, b = _float64(harmful), _float64(harmless)
    x, y = _labelled(h, b)
    fit, held = (_index(i) for i in _stratified_split(len(h), len(b), holdout, np.random.default_rng(seed)))
    check_probe_regime(x.shape[1], len(fit))
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
    draws = []
    for _ in range(n_bootstrap):  # drawn in order, evaluated on every core
        f = _index(_resample_stratified(fit, labels, rng))
        draws.append((f, _index(_resample_stratified(held, labels, rng))))

    def count(draw: tuple[Tensor, Tensor]) -> int:
        f, t = draw
        return inlp(x[f], y[f], x[t], y[t], max_k=max_k, l2=l2, chance_margin=chance_margin).k

    return np.array(parallel_map(count, draws), dtype=float)


def _resample_stratified(index: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    parts = []
    for label in (1.0, 0.0):
        members = index[labels[index] == label]
        parts.append(members[rng.integers(0, len(members), len(members))])
    return np.concatenate(parts)
