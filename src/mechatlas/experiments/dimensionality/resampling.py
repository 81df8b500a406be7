"""Intervals and nulls over the right unit for the dimensionality study's several-group statistics.

Organism prompts are a task wrapped in a framing, and prompts that share a framing fail together, so an
interval that resamples prompts one by one is too narrow. ``GroupClusters`` holds each prompt group's
clusters (organism framings, or public prompts' source sets); ``grouped_resamples`` draws whole clusters
within each group (``mechatlas.stats.stratified_cluster_resamples``; prompts one by one where no
clusters are given, or where a group holds a single cluster); ``grouped_bootstrap`` turns a statistic
of several groups' values into a percentile 95% interval over that unit and records the unit;
``permuted_within`` shuffles labels among the items of each cluster, for permutation nulls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mechatlas.stats import percentile_ci, stratified_cluster_resamples


@dataclass(frozen=True)
class GroupClusters:
    """The cluster of every prompt in each group (``harmful``, ``harmless``, ``alarming``), in row order,
    and what a cluster is (``unit``: "organism framing" or "source set")."""

    of: Mapping[str, Sequence[str]]
    unit: str

    def pair(self) -> tuple[list[str], list[str]]:
        """The harmful and the harmless prompts' clusters."""
        return list(self.of["harmful"]), list(self.of["harmless"])

    def rows(self, label: str, rows: Sequence[int] | np.ndarray) -> list[str]:
        """The clusters of ``rows`` of group ``label``."""
        return [self.of[label][int(i)] for i in rows]


def permuted_within(labels: np.ndarray, clusters: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``labels`` shuffled among the items of each cluster (all items when there are no clusters)."""
    if clusters is None:
        return rng.permutation(labels)
    out = labels.copy()
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        out[members] = labels[rng.permutation(members)]
    return out


def grouped_resamples(
    sizes: Sequence[int],
    clusters: Sequence[Sequence[str]] | None,
    *,
    n_resamples: int,
    seed: int,
) -> list[list[np.ndarray]]:
    """Bootstrap resamples of several groups at once: per resample, one array of item indices per group.

    Within each group whole clusters are drawn with replacement (``clusters[g]`` holds group g's items'
    clusters), or items one by one where ``clusters`` is None or the group has a single cluster. Groups
    are drawn independently of each other; an empty group stays empty.

    >>> [[i.tolist() for i in r] for r in grouped_resamples([2, 1], [["a", "b"], ["c"]], n_resamples=1, seed=0)]
    [[[1, 1], [0]]]
    """
    if clusters is not None and [len(c) for c in clusters] != list(sizes):
        raise ValueError(f"group sizes {list(sizes)} but cluster labels for {[len(c) for c in clusters]}")
    offsets = np.cumsum([0, *sizes])
    strata = [g for g, n in enumerate(sizes) for _ in range(n)]
    units = None if clusters is None else [f"{g}/{c}" for g, group in enumerate(clusters) for c in group]
    if not strata:
        return [[np.zeros(0, dtype=np.intp) for _ in sizes] for _ in range(n_resamples)]
    return [
        [rows[(rows >= offsets[g]) & (rows < offsets[g + 1])] - offsets[g] for g in range(len(sizes))]
        for rows in stratified_cluster_resamples(strata, units, n_resamples=n_resamples, seed=seed)
    ]


def interval_unit(clusters: Sequence[Sequence[str]] | None, unit: str) -> dict[str, Any]:
    """How an interval from ``grouped_resamples`` was drawn: ``interval_unit`` and, with clusters, the
    number of clusters per group (a group with fewer than two was resampled prompt by prompt)."""
    if clusters is None:
        return {"interval_unit": "prompt"}
    counts = [len(set(group)) for group in clusters]
    text = f"cluster ({unit}) within group"
    if any(0 < c < 2 for c in counts):
        text += "; prompts in a group with a single cluster"
    return {"interval_unit": text, "n_clusters": counts}


def grouped_bootstrap(
    samples: Sequence[np.ndarray],
    clusters: Sequence[Sequence[str]] | None,
    statistic: Callable[[Sequence[np.ndarray]], float],
    *,
    unit: str = "cluster",
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """``statistic`` of several groups' values with a percentile 95% CI resampling whole clusters within
    each group (``grouped_resamples``), the group sizes ``n`` and the ``interval_unit``. Draws that come out
    NaN (a resample that leaves a ratio undefined) are left out; with none left the CI is NaN."""
    data = [np.asarray(s, dtype=np.float64) for s in samples]
    draws = np.array(
        [
            statistic([values[pick] for values, pick in zip(data, picks, strict=True)])
            for picks in grouped_resamples(
                [len(v) for v in data], clusters, n_resamples=n_resamples, seed=seed
            )
        ],
        dtype=np.float64,
    )
    return {
        "value": statistic(data),
        "ci95": list(percentile_ci(draws[np.isfinite(draws)])),
        "n": [len(v) for v in data],
        **interval_unit(clusters, unit),
    }
