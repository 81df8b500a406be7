"""Choosing the refusal direction among the difference-in-means candidates (Arditi et al. 2024).

Every (post-instruction position, layer) pair gives a candidate; each is scored on validation
prompts by how far ablating it bypasses refusal, how far adding it induces refusal, and how far
ablating it moves harmless next-token distributions (KL). The paper's selection (arXiv 2406.11717,
Appendix C) filters out late layers, candidates with a large KL and candidates that do not induce
refusal, then takes the lowest bypass score. This module holds the filters, the choice, and the
tables ``select`` writes about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
            # As the reference code (andyrdt/refusal_direction, select_direction.filter_fn): a layer is kept
            # when it is below int(fraction * n_layers), so 0.8 of 4 layers keeps layers 0-2, not 0-3.
            "passes_layer": scores["layer"] < int(filters.max_layer_fraction * n_layers),
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


def validation_texts(
    index: pd.DataFrame, n_val: int, seed: int, where: str = "index.parquet"
) -> dict[str, list[str]]:
    """The val prompts candidates are scored on, per label: the kept ones (all if none is kept), capped;
    never a held-out prompt (``held_out_group``: the alarming controls, XSTest's safe prompts)."""
    from mechatlas.experiments.common import cap_per_domain, held_out_groups
    from mechatlas.prompts import PromptRecord

    index = index[[group is None for group in held_out_groups(index, where)]]
    val: dict[str, list[str]] = {}
    for label in ("harmful", "harmless"):
        rows = index[(index["label"] == label) & (index["split"] == "val")]
        kept = rows[rows["kept"]] if rows["kept"].any() else rows
        records = [PromptRecord(r.id, r.text, label, r.domain, "val", "index") for r in kept.itertuples()]  # type: ignore[arg-type]
        val[label] = [r.text for r in cap_per_domain(records, n_val, seed)]
    return val


def candidate_table(
    meta: Mapping[str, Any], grid: Sequence[tuple[int, int]], vectors: Any, scores: Any
) -> pd.DataFrame:
    """One row per (position, layer) candidate: where it is, its length and its three scores."""
    return pd.DataFrame(
        {
            "position": [meta["positions"][p] for p, _ in grid],
            "token": [meta["position_tokens"][p] for p, _ in grid],
            "layer": np.array([layer for _, layer in grid]),
            "hook": [f"blocks.{layer}.hook_resid_pre" for _, layer in grid],
            "norm": vectors.norm(dim=-1).numpy(),
            "bypass_score": scores.bypass.double().numpy(),
            "induce_score": scores.induce.double().numpy(),
            "kl_score": scores.kl.double().numpy(),
        }
    )


def selection_info(
    meta: Mapping[str, Any],
    chosen: Selection,
    filters: SelectionFilters,
    *,
    model: Mapping[str, Any],
    norm: float,
    baseline: Mapping[str, float],
    val: Mapping[str, Sequence[str]],
    n_candidates: int,
    addition_coefficient: float,
    refusal_tokens: Any,
) -> dict[str, Any]:
    """The ``direction.json`` of a selection: the chosen candidate, the filters and the counts behind it."""
    p_index = meta["positions"].index(chosen.position)
    held_out = meta.get("held_out", {})
    counts = {label: meta["counts"][f"{label}_train"] for label in val}
    held_train = {
        label: sum(n.get(f"{label}_train", 0) for n in held_out.get("n", {}).values()) for label in val
    }

    return {
        "model": dict(model),
        "position": chosen.position,
        "position_index": p_index,
        "token": meta["position_tokens"][p_index],
        "layer": chosen.layer,
        "hook": f"blocks.{chosen.layer}.hook_resid_pre",
        "norm": norm,
        "bypass_score": chosen.bypass_score,
        "induce_score": chosen.induce_score,
        "kl_score": chosen.kl_score,
        "passed_filters": chosen.passed_filters,
        "relaxed_filters": list(chosen.relaxed),
        "filters": {
            "max_layer_fraction": filters.max_layer_fraction,
            "max_kl": filters.max_kl,
            "min_induce": filters.min_induce,
        },
        "baseline_refusal_score_val": dict(baseline),
        "n_val": {label: len(texts) for label, texts in val.items()},
        # the prompts in each train mean: the kept ones, or all but the held-out ones where none is kept
        "n_train": {label: counts[label]["kept"] or counts[label]["n"] - held_train[label] for label in val},
        "held_out": dict(held_out),
        "n_candidates": n_candidates,
        "addition_coefficient": addition_coefficient,
        "refusal_tokens": refusal_tokens,
        "tensors": {
            "direction": "difference in means at the selected position and layer (float64, unnormalised)",
            "unit_direction": "direction / |direction|",
            "candidates": "every candidate, (position, layer, d_model) float64",
        },
    }
