"""The refusal-direction result page's headline: refusal rates per condition, controls marked.

The site shows it first on the page (``mechatlas.experiments.registry`` names it); the generic
tables of ``mechatlas.site.tables`` still show every number of the record below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.markdown import (
    fmt_leaf,
    fmt_metric,
    fmt_number,
    is_leaf,
    leaf_table,
    md_code,
    md_text,
    readable_hook,
    readable_token,
    table,
)

CONDITION_NAMES = {
    "baseline": "unmodified model",
    "ablation": "direction ablated",
    "actadd": "direction added",
    "random_ablation": "random direction ablated",
    "random_actadd": "random vector added",
}


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
        label = CONDITION_NAMES.get(name, name)
        rows.append(
            [
                f"**{md_text(label)}**" if not control else md_text(label),
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
    lines += _over_refusal_lines(metrics, judge)
    selected = metrics.get("selected_direction")
    if isinstance(selected, Mapping):
        facts = [
            (k, readable_hook(v) if k == "hook" else readable_token(v) if k == "token" else v)
            for k, v in selected.items()
            if is_leaf(v)
        ]
        lines += ["The selected direction:", "", *leaf_table(facts)]
    return lines


OVER_REFUSAL_GROUPS = {"alarming": "alarming-but-harmless controls refused", "xstest": "XSTest safe refused"}


def _over_refusal_lines(metrics: Mapping[str, Any], judge: str) -> list[str]:
    """Harmful refusal beside over-refusal of benign-but-alarming prompts, per intervention."""
    over = metrics.get("over_refusal") or {}
    rates = (over.get("rates") or {}).get(judge) or {}
    groups = [g for g in OVER_REFUSAL_GROUPS if any(g in cell for cell in rates.values())]
    if not groups:
        return []
    rows = [
        [
            md_text(CONDITION_NAMES.get(name, name)),
            fmt_leaf(cell.get("harmful")),
            *(fmt_leaf(cell.get(g)) for g in groups),
        ]
        for name, cell in rates.items()
    ]
    return [
        "",
        f"Over-refusal beside harmful refusal ({md_code(judge)}; 95% intervals over "
        f"{md_text(str(over.get('interval_unit', 'prompts')))}): benign prompts that look alarming should be "
        "answered unless the direction is added.",
        "",
        *table(["condition", "harmful refused", *(OVER_REFUSAL_GROUPS[g] for g in groups)], rows),
    ]


# --- Findings: the two to four sentences a result page, the home page and the blog post open with ---


def _rate(metric: Mapping[str, Any]) -> str:
    return fmt_metric(metric, with_n=False)


def refusal_direction_findings(metrics: Mapping[str, Any]) -> list[str]:
    """What the run found, in plain sentences with intervals and controls (plain text, not Markdown).

    Each sentence is made only if the record has its numbers; a record in another shape gives fewer.
    """
    judge = str(metrics.get("verdict_judge", "substring"))
    rates = metrics["refusal_rate"][judge]
    sentences = []
    harmful, harmless = "harmful", "harmless"
    n = rates["baseline"][harmful].get("n")
    layer = (metrics.get("selected_direction") or {}).get("layer")
    where = f", read from the residual stream before block {layer}," if layer is not None else ""
    sentences.append(
        f"Ablating one difference-in-means direction{where} takes harmful refusal from "
        f"{_rate(rates['baseline'][harmful])} to {_rate(rates['ablation'][harmful])} "
        f"(n = {n} held-out prompts), while ablating a random direction of the same norm leaves it at "
        f"{_rate(rates['random_ablation'][harmful])}."
    )
    if "actadd" in rates:
        sentences.append(
            f"Adding the direction makes the model refuse {_rate(rates['actadd'][harmless])} of harmless "
            f"prompts, against {_rate(rates['baseline'][harmless])} unmodified and "
            f"{_rate(rates['random_actadd'][harmless])} with a random vector of the same norm."
        )
    capability = metrics.get("capability") or {}
    ortho = metrics.get("orthogonalization") or {}
    if "ablation" in capability and "random_ablation" in capability:
        cost = (
            "On the one capability measure used here, cross-entropy of the model's own completions of "
            f"harmless prompts, ablation costs {fmt_metric(capability['ablation']['delta_ce'], with_n=False)} "
            f"nats (a random direction: {fmt_metric(capability['random_ablation']['delta_ce'], with_n=False)})"
        )
        if ortho.get("max_abs_logit_diff") is not None:
            cost += (
                "; written into the weights, the ablation gives the same logits to within "
                f"{fmt_number(ortho['max_abs_logit_diff'])}"
            )
        sentences.append(cost + ".")
    return sentences
