"""Candidate refusal directions: difference in means, and the paper's selection rule.

Arditi et al. 2024 (arXiv 2406.11717, §2.3-2.4) compute, for every post-instruction position ``i``
and layer ``l``, the difference between the mean residual activation on harmful and on harmless
instructions, ``r_i^l = μ_i^l(harmful) - μ_i^l(harmless)``. Each is a candidate refusal direction.
The chosen one has the lowest *bypass score* among candidates that pass three filters (Appendix C):
its layer is early enough (``l < 0.8·L``), ablating it barely moves harmless next-token predictions
(KL < 0.1), and adding it makes the model refuse (induce score > 0). The scores themselves need
interventions and are computed in ``mechatlas.evaluation.score_candidates``.

Means are accumulated in float64 (``MeanAccumulator``), one batch at a time.

>>> acc = MeanAccumulator()
>>> acc.update(torch.ones(2, 3)); acc.update(torch.zeros(2, 3))
>>> acc.mean().tolist()
[0.5, 0.5, 0.5]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
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


def random_direction(d_model: int, norm: float, seed: int) -> Float[Tensor, " d_model"]:
    """A Gaussian random vector of the given norm: the control for a direction of that norm."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(d_model, generator=generator, dtype=torch.float64)
    return vector / vector.norm() * norm


@dataclass(frozen=True)
class SelectionFilters:
    """The paper's filters on candidate directions (Arditi et al. 2024, Appendix C)."""

    max_layer_fraction: float = 0.8
    max_kl: float = 0.1
    min_induce: float = 0.0


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and how it was chosen."""

    position: int
    layer: int
    bypass_score: float
    induce_score: float
    kl_score: float
    passed_filters: bool
    relaxed: tuple[str, ...] = field(
        default=()
    )  # filters the choice fails (when no candidate passes them all)


def filter_columns(scores: pd.DataFrame, n_layers: int, filters: SelectionFilters) -> pd.DataFrame:
    """One boolean column per filter: does each candidate pass it?"""
    return pd.DataFrame(
        {
            "passes_layer": scores["layer"] < filters.max_layer_fraction * n_layers,
            "passes_kl": scores["kl_score"] < filters.max_kl,
            "passes_induce": scores["induce_score"] > filters.min_induce,
        },
        index=scores.index,
    )


def select_direction(scores: pd.DataFrame, n_layers: int, filters: SelectionFilters) -> Selection:
    """The candidate with the lowest bypass score among those passing every filter.

    ``scores`` has one row per candidate with columns ``position``, ``layer``, ``bypass_score``,
    ``induce_score`` and ``kl_score`` (and optionally ``norm``: zero-length candidates, such as layer-0
    differences of identical template tokens, are never chosen). The paper stops when no candidate
    passes every filter; here the rule generalises instead, so that the pipeline still reports on a
    model that does not refuse (or a random one): the fewest filters failed wins, then the lowest
    bypass score. The selection says which filters its choice fails (``relaxed``).
    """
    passes = filter_columns(scores, n_layers, filters)
    usable = np.isfinite(scores["bypass_score"].to_numpy())
    if "norm" in scores:
        usable &= scores["norm"].to_numpy() > 0
    if not usable.any():
        raise ValueError("no candidate has a finite bypass score and a non-zero length")
    failed = (~passes).sum(axis=1)
    ranked = scores.assign(_failed=failed)[usable].sort_values(
        ["_failed", "bypass_score", "layer", "position"]
    )
    best = ranked.iloc[0]
    relaxed = tuple(
        column.removeprefix("passes_") for column in passes.columns if not passes.loc[ranked.index[0], column]
    )
    return Selection(
        position=int(best["position"]),
        layer=int(best["layer"]),
        bypass_score=float(best["bypass_score"]),
        induce_score=float(best["induce_score"]),
        kl_score=float(best["kl_score"]),
        passed_filters=not relaxed,
        relaxed=relaxed,
    )
