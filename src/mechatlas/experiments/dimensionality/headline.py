"""The dimensionality result page's headline: the estimated dimension of refusal per layer and estimator.

The site shows it first on the page (``mechatlas.experiments.registry`` names it); the generic
tables of ``mechatlas.site.tables`` still show every number of the record below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.markdown import fmt_number, md_code, md_text, table


def dimensionality_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Layer × estimator: the estimated dimension of refusal, with its 95% CI, at the selected position."""
    rows = [r for r in metrics["dimensionality"]["table"] if r.get("selected_position")]
    flat = {int(r["layer"]): r.get("note") for r in rows if r.get("note")}  # e.g. an embedding layer
    estimators: list[str] = []
    by_layer: dict[int, dict[str, str]] = {}
    for r in rows:
        if int(r["layer"]) in flat:
            continue
        estimator = str(r["estimator"])
        if estimator not in estimators:
            estimators.append(estimator)
        k = r.get("k")
        if k is None:
            cell = md_text(r.get("control") or "not reached")
        else:
            cell = fmt_number(k)
            if r.get("ci_low") is not None and r.get("ci_high") is not None:
                cell += f" [{fmt_number(r['ci_low'])}, {fmt_number(r['ci_high'])}]"
        by_layer.setdefault(int(r["layer"]), {})[estimator] = cell
    selected = metrics["dimensionality"].get("selected", {})
    lines = [
        "The number of dimensions refusal takes, per layer, at the selected prompt position "
        f"({md_code(selected.get('token', '?'))}, position {md_text(selected.get('position', '?'))}), by each "
        "estimator, with 95% bootstrap intervals. The causal rows count how many top directions must be "
        "ablated before harmful refusal falls below the threshold; the random-direction row is their control.",
        "",
        *table(
            ["layer", *(md_text(e) for e in estimators)],
            (
                [str(layer), *(cells.get(e, "—") for e in estimators)]
                for layer, cells in sorted(by_layer.items())
            ),
        ),
    ]
    lines += [f"Layer {layer}: {md_text(note)}; no estimate.\n" for layer, note in sorted(flat.items())]
    return lines
