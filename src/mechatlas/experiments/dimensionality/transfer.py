"""The cross-domain transfer matrix and its gap: does ablating domain A's direction cut refusal more on A's
prompts than on other domains'? The gap has an interval that resamples whole clusters (framings) within
domains, and a permutation null that shuffles domain labels among the prompts of each framing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mechatlas.experiments.dimensionality.causal import rate_of_rows
from mechatlas.experiments.dimensionality.resampling import permuted_within


def transfer_matrix(rows: pd.DataFrame, sources: Sequence[str], targets: Sequence[str]) -> dict[str, Any]:
    """Refusal rate on target domain B (columns) with source domain A's direction ablated (rows)."""
    matrix: list[list[dict[str, Any]]] = []
    for source in sources:
        chosen = rows[rows["direction"] == source]
        matrix.append([rate_of_rows(chosen[chosen["domain"] == t]) for t in targets])
    return {"sources": list(sources), "targets": list(targets), "rates": matrix}


def _gap(flags: np.ndarray, domains: np.ndarray, names: Sequence[str]) -> float:
    """Mean over source domains A of (refusal on the other domains − refusal on A) with A's direction
    ablated; ``flags`` is (prompt, source) and ``domains`` each prompt's (pseudo-)domain."""
    gaps = []
    for i, source in enumerate(names):
        own = domains == source
        others = [flags[domains == t, i].mean() for t in names if t != source and (domains == t).any()]
        if own.any() and others:
            gaps.append(float(np.mean(others)) - float(flags[own, i].mean()))
    return float(np.mean(gaps)) if gaps else float("nan")


def transfer_gap(
    rows: pd.DataFrame,
    names: Sequence[str],
    *,
    n_bootstrap: int,
    seed: int,
    domain_of: dict[str, str] | None = None,
    n_permutations: int = 0,
) -> dict[str, Any]:
    """The transfer gap (``_gap``) with a bootstrap 95% CI and, with ``n_permutations``, a permutation test.

    ``rows`` holds one row per prompt and ablated direction (``id``, ``domain``, ``direction``,
    ``refused``, and ``cluster`` where prompts come in clusters) for every direction in ``names``;
    ``domain_of`` (prompt id -> group) replaces the prompts' domains, for pseudo-domains.

    The CI resamples whole clusters (organism framings) within each domain, prompts where there are no
    clusters (``interval_unit``). The null permutes the domain labels among the prompts of each cluster,
    so every permuted domain keeps its framings, and recomputes the gap on the same ablation rows: under
    "a domain's direction acts on its own domain no differently from the others" the labels are
    exchangeable within a framing. ``permutation.p_value`` is (1 + #{null gap >= observed}) / (1 + n).
    """
    from mechatlas.stats import percentile_ci, stratified_cluster_resamples

    wide = rows[rows["direction"].isin(names)].pivot(index="id", columns="direction", values="refused")
    wide = wide[list(names)].astype(float)
    first = rows.drop_duplicates("id").set_index("id")
    labels = np.array([(domain_of or {}).get(i, first["domain"][i]) for i in wide.index])
    clusters = first["cluster"].astype(str)[wide.index].to_numpy() if "cluster" in first else None
    flags = wide.to_numpy()
    value = _gap(flags, labels, names)
    resamples = stratified_cluster_resamples(
        labels.tolist(), None if clusters is None else clusters.tolist(), n_resamples=n_bootstrap, seed=seed
    )
    draws = np.array([_gap(flags[pick], labels[pick], names) for pick in resamples])
    out: dict[str, Any] = {
        "value": value,
        "ci95": list(percentile_ci(draws[np.isfinite(draws)])),
        "n": len(flags),
        "n_bootstrap": n_bootstrap,
        "interval_unit": "prompts within domains" if clusters is None else "clusters within domains",
    }
    if clusters is not None:
        out["n_clusters"] = len(np.unique(clusters))
    if n_permutations:
        rng = np.random.default_rng(seed)
        null = np.array(
            [_gap(flags, permuted_within(labels, clusters, rng), names) for _ in range(n_permutations)]
        )
        finite = null[np.isfinite(null)]
        out["permutation"] = {
            "n": n_permutations,
            "p_value": float((1 + np.sum(finite >= value - 1e-12)) / (1 + len(finite)))
            if np.isfinite(value)
            else None,
            "p95": float(np.percentile(finite, 95)) if len(finite) else None,
            "scheme": "domain labels permuted among the prompts of each cluster"
            if clusters is not None
            else "domain labels permuted among all prompts",
        }
    return out
