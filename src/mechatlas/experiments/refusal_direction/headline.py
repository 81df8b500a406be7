"""The refusal-direction result page's headline: refusal rates per condition, controls marked.

The site shows it first on the page (``mechatlas.experiments.registry`` names it); the generic
tables of ``mechatlas.site.tables`` still show every number of the record below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.markdown import fmt_leaf, is_leaf, leaf_table, md_code, md_text, table


def refusal_direction_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Conditions × (harmful, harmless) refusal rates and the capability cost, controls marked."""
    judge = str(metrics["verdict_judge"])
    rates = metrics["refusal_rate"][judge]
    conditions = metrics.get("conditions", {})
    capability = metrics.get("capability", {})
    rows = []
    for name, by_label in rates.items():
        condition = conditions.get(name, {})
        control = condition.get("direction") in ("random", "none")
        what = (
            "no intervention"
            if condition.get("direction") == "none"
            else f"{condition.get('harmful', '?')} (harmful) / {condition.get('harmless', '?')} (harmless), "
            f"{condition.get('direction', '?')} direction"
        )
        delta = capability.get(name, {}).get("delta_ce")
        rows.append(
            [
                f"**{md_text(name)}**" if not control else md_text(name),
                md_text(what),
                "control" if control else "test",
                fmt_leaf(by_label.get("harmful")),
                fmt_leaf(by_label.get("harmless")),
                fmt_leaf(delta) if delta is not None else "—",
            ]
        )
    lines = [
        f"Refusal rates on held-out test prompts, judged by {md_code(judge)} (the judge the verdicts use), "
        "with 95% Wilson intervals. Controls: the unmodified model, and the same interventions with a "
        "random direction of equal norm.",
        "",
        *table(
            [
                "condition",
                "intervention",
                "role",
                "harmful refused",
                "harmless refused",
                "ΔCE harmless (nats)",
            ],
            rows,
        ),
    ]
    selected = metrics.get("selected_direction")
    if isinstance(selected, Mapping):
        facts = [(k, v) for k, v in selected.items() if is_leaf(v)]
        lines += ["The selected direction:", "", *leaf_table(facts)]
    return lines
