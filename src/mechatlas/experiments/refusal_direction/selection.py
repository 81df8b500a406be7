"""DOCSTRING (directions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


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
