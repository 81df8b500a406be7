"""The validation table: on each planted organism, the answer planted by training beside what every
dimensionality estimator recovers from the same stages any model runs through.

A planted organism's verification record (``data/results/organism/planted/<name>.json``) says what was
planted (``kind``, ``planted_k``, ``groups``) and whether the planted property was measured to hold; its
dimensionality record (``data/results/dimensionality/<model>/metrics.json``) says what the estimators
found. This module reads both and nothing else, so the site and the tests share one definition of
"recovered" and of "hit".

What each estimator is expected to return on a planted organism:

- *causal top-k* (top-k spectral directions ablated) and the *constrained optimised bypass* measure the
  causal dimension: the planted k (the domain-groups organism needs all its group directions together);
- *spectral* (parallel analysis) and *probe* (INLP) count directions that separate harmful from harmless
  activations, which training did not constrain: they are reported against the planted k, and a count
  above it is a miss as a causal estimate (expected, and the reason the causal estimators exist);
- the *cone check* (effective rank of the per-domain difference-in-means directions) should find one
  domain direction where every domain shares the mechanism and one per group on the domain-groups organism;
- the *transfer matrix* (refusal on domain B with domain A's direction ablated) should group the domains
  as planted: one block when one direction serves all, the planted groups, and no domain direction that
  removes refusal anywhere on the redundant organism (a single direction is not enough there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mechatlas.experiments.registry import MISSED, NOT_MEASURED, RECOVERED
from mechatlas.records import planted_answer

#: A rate counts as "refusal removed" when the upper end of its interval lies below this, as in the
#: planted organisms' verification (organism.planted.<name>.verify.removed_below's default).
REMOVED_BELOW = 0.25

HIT, MISS, NOT_RUN = RECOVERED, MISSED, NOT_MEASURED


def _row(
    estimator: str,
    measures: str,
    planted: Any,
    recovered: Any,
    interval: Any,
    hit: bool | None,
    note: str = "",
) -> dict[str, Any]:
    return {
        "estimator": estimator,
        "measures": measures,
        "planted": planted,
        "recovered": recovered,
        "interval": interval,
        "result": NOT_RUN if hit is None else HIT if hit else MISS,
        "note": note,
    }


def _table_row(metrics: Mapping[str, Any], estimator: str, layer: int) -> Mapping[str, Any] | None:
    rows = (metrics.get("dimensionality") or {}).get("table") or []
    return next((r for r in rows if r.get("estimator") == estimator and r.get("layer") == layer), None)


def _count(
    metrics: Mapping[str, Any], estimator: str, label: str, measures: str, layer: int, planted_k: int
) -> dict[str, Any]:
    row = _table_row(metrics, estimator, layer)
    if row is None or row.get("k") is None:
        return _row(label, measures, planted_k, None, None, None, "no value at the selected layer")
    k = float(row["k"])
    interval = [row.get("ci_low"), row.get("ci_high")]
    low, high = (
        (interval[0] if interval[0] is not None else k),
        (interval[1] if interval[1] is not None else k),
    )
    return _row(
        label, measures, planted_k, k, interval, low <= planted_k <= high, str(row.get("control") or "")
    )


def causal_k(metrics: Mapping[str, Any], planted_k: int) -> dict[str, Any]:
    """The smallest k of top-k spectral ablation that removes refusal, at the selected layer, with its
    cluster-bootstrap interval and the random-direction control beside it."""
    causal = metrics.get("causal") or {}
    layer = causal.get("selected_layer")
    sweep = (causal.get("sweeps") or {}).get(str(layer)) or {}
    spectral = sweep.get("spectral")
    measures = "smallest k of top-k spectral directions whose ablation removes refusal"
    if not spectral:
        return _row("causal top-k", measures, planted_k, None, None, None, "no sweep at the selected layer")
    random = sweep.get("random") or {}
    control = (
        f"k random directions: not below threshold up to k = {random.get('max_k_evaluated')}"
        if random.get("k") is None
        else f"k random directions: k = {random['k']}"
    )
    pcs = (sweep.get("controls") or {}).get("harmless_pcs") or {}
    if pcs.get("k") is not None:
        control += f"; top-k harmless principal components: k = {pcs['k']}"
    kl = sweep.get("harmless_kl") or {}
    if kl.get("spectral") is not None:
        control += f"; harmless first-token KL at k = {kl.get('k')}: {kl['spectral']:.3g} nats (random {kl.get('random', float('nan')):.3g})"
    k = spectral.get("k")
    if k is None:
        note = f"never below threshold up to k = {spectral.get('max_k_evaluated')}; {control}"
        return _row("causal top-k", measures, planted_k, None, spectral.get("ci95"), False, note)
    return _row(
        "causal top-k", measures, planted_k, int(k), spectral.get("ci95"), int(k) == planted_k, control
    )


def optimised_m(metrics: Mapping[str, Any], planted_k: int) -> dict[str, Any]:
    """The smallest constrained optimised subspace that bypasses refusal (the optimised stage's search)."""
    bypass = ((metrics.get("optimised") or {}).get("bypass")) or {}
    measures = "smallest optimised subspace, read-out protected, whose ablation removes refusal"
    if not bypass:
        return _row("optimised bypass (constrained)", measures, planted_k, None, None, None, "not run")
    m = bypass.get("smallest_m_constrained")
    searched = max((row["m"] for row in bypass.get("constrained") or []), default=0)
    curve = {
        row["m"]: row["subspace"]["harmful"] for row in bypass.get("constrained") or [] if "subspace" in row
    }
    note = "; ".join(
        f"m = {size}: {rate['value']:.2f} [{rate['ci95'][0]:.2f}, {rate['ci95'][1]:.2f}]"
        for size, rate in sorted(curve.items())
    )
    if m is None:
        return _row(
            "optimised bypass (constrained)",
            measures,
            planted_k,
            None,
            None,
            None if planted_k > searched else False,  # a search that stopped below k cannot miss it
            f"no bypass up to m = {searched}; {note}",
        )
    return _row(
        "optimised bypass (constrained)", measures, planted_k, int(m), None, int(m) == planted_k, note
    )


def cone_rank(metrics: Mapping[str, Any], expected: int) -> dict[str, Any]:
    """The effective rank of the per-domain difference-in-means directions (the cone check's generators)."""
    cone = (metrics.get("causal") or {}).get("cone") or {}
    measures = "effective rank of the per-domain difference-in-means directions"
    rank = cone.get("effective_rank")
    if rank is None:
        return _row("cone check", measures, expected, None, None, None, "no cone measured")
    return _row("cone check", measures, expected, round(float(rank), 2), None, round(float(rank)) == expected)


def transfer_groups(
    metrics: Mapping[str, Any], planted: Mapping[str, Any], removed_below: float = REMOVED_BELOW
) -> dict[str, Any]:
    """The domain grouping the transfer matrix implies: domains joined when one's direction removes the
    other's refusal (upper interval end below ``removed_below``), compared with the planted grouping."""
    transfer = (metrics.get("causal") or {}).get("transfer") or {}
    measures = "groups of domains whose directions remove each other's refusal"
    sources: list[str] = transfer.get("sources") or []
    targets: list[str] = transfer.get("targets") or []
    rates: list[list[Mapping[str, Any]]] = transfer.get("rates") or []
    if not sources or not rates:
        return _row("transfer matrix", measures, None, None, None, None, "no transfer matrix")
    removes = {
        (a, b)
        for a, row in zip(sources, rates, strict=True)
        for b, rate in zip(targets, row, strict=True)
        if rate.get("ci95") and rate["ci95"][1] is not None and rate["ci95"][1] < removed_below
    }
    found = [sorted(g) for g in _components(sorted(set(sources) | set(targets)), removes)]
    found = [g for g in found if len(g) > 1 or (g[0], g[0]) in removes]
    kind = planted["kind"]
    everything = sorted(set(sources) | set(targets))
    expected = (
        planted["groups"] if kind == "domain_groups" else [everything] if kind == "one_direction" else []
    )
    diagonal = sum((d, d) in removes for d in everything)
    note = f"{diagonal} of {len(everything)} domains' own directions remove their own refusal"
    return _row(
        "transfer matrix",
        measures,
        _groups_text(expected),
        _groups_text(found),
        None,
        _same(found, expected),
        note,
    )


def _components(nodes: Sequence[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    parent = {n: n for n in nodes}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for n in nodes:
        groups.setdefault(root(n), []).append(n)
    return sorted(groups.values(), key=lambda g: sorted(g)[0])


def _same(found: Sequence[Sequence[str]], expected: Sequence[Sequence[str]]) -> bool:
    return sorted(map(sorted, found)) == sorted(map(sorted, expected))


def _groups_text(groups: Sequence[Sequence[str]]) -> str:
    if not groups:
        return "none (no single domain direction removes refusal)"
    return "; ".join("{" + ", ".join(g) + "}" for g in sorted(map(sorted, groups)))


def validation_rows(verification: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per estimator: planted answer, recovered value, interval, and whether it was recovered."""
    planted = planted_answer(verification)
    k = planted["k"]
    dims = metrics.get("dimensionality") or {}
    layer = int((dims.get("selected") or {}).get("layer", -1))
    return [
        causal_k(metrics, k),
        optimised_m(metrics, k),
        _count(
            metrics,
            "spectral (parallel analysis)",
            "spectral",
            "harmful-vs-harmless directions above the null",
            layer,
            k,
        ),
        _count(metrics, "probe (INLP)", "probe (INLP)", "linear probes removed before chance", layer, k),
        cone_rank(metrics, planted["cone_rank"]),
        transfer_groups(metrics, planted),
    ]
