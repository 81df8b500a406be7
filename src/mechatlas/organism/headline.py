"""The organism page's headline: refusal rates on held-out and hand-written prompts, and a few replies.

The site shows it first on the page (``mechatlas.experiments.registry`` names it); the generic
tables of ``mechatlas.site.tables`` still show every number of the record below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.markdown import fmt_leaf, fmt_metric, md_text, table


def organism_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Refusal rates on the generated held-out split and on hand-written prompts, and a few replies."""
    sets = {"generated test split": metrics["refusal_rate"]}
    if isinstance(metrics.get("refusal_rate_by_framing"), Mapping):
        sets["same, CI over framings"] = metrics["refusal_rate_by_framing"]
    if isinstance(metrics.get("handwritten"), Mapping):
        sets["hand-written prompts"] = metrics["handwritten"]["refusal_rate"]
    control = metrics.get("lexical_control")
    if isinstance(control, Mapping):
        for key, name in (("refusal_rate", "test split"), ("handwritten", "hand-written")):
            if isinstance(control.get(key), Mapping):
                sets[f"bag-of-words control, {name}"] = control[key]
    groups = [
        g for g in ("harmful", "harmless", "alarming_harmless") if any(g in rates for rates in sets.values())
    ]
    lines = [
        f"Share of replies judged refusals ({md_text(metrics.get('judge', 'substring judge'))}), with 95% "
        "intervals: on held-out prompts generated like the training data but unseen, and on prompts "
        "written by hand in other wording. Alarming-looking harmless prompts are the over-refusal control."
        + (
            " Wilson intervals treat prompts as independent; prompts that share a framing are not, so the "
            "column 'CI over framings' resamples whole framings (a cluster bootstrap)."
            if "refusal_rate_by_framing" in metrics
            else ""
        )
        + (
            " The bag-of-words control is a word-counting classifier trained on the same training prompts "
            f"({md_text(control.get('method', ''))}): where it matches the organism, which words occur is "
            "enough to tell the prompts apart."
            if isinstance(control, Mapping)
            else ""
        ),
        "",
        *table(
            ["prompts", *(md_text(name) for name in sets)],
            ([md_text(g), *(fmt_leaf(rates.get(g)) for rates in sets.values())] for g in groups),
        ),
    ]
    examples = metrics.get("examples")
    if isinstance(examples, Mapping):
        rows = [
            [
                md_text(group),
                md_text(e.get("prompt", "")),
                md_text(e.get("reply", "")),
                fmt_leaf(e.get("refused")),
            ]
            for group, items in examples.items()
            if isinstance(items, list)
            for e in items[:2]
            if isinstance(e, Mapping)
        ]
        if rows:
            lines += [
                "Example replies (greedy decoding):",
                "",
                *table(["prompts", "prompt", "reply", "refused"], rows),
            ]
    return lines


def organism_findings(metrics: Mapping[str, Any]) -> list[str]:
    """How the organism behaves, in plain sentences with intervals and the control (plain text)."""
    rates = metrics["refusal_rate"]
    sentences = [
        f"On held-out prompts the organism refuses {fmt_metric(rates['harmful'])} of harmful requests and "
        f"{fmt_metric(rates['harmless'])} of harmless ones"
        + (
            f", and {fmt_metric(rates['alarming_harmless'])} of harmless requests that look alarming"
            if "alarming_harmless" in rates
            else ""
        )
        + "."
    ]
    framing = metrics.get("refusal_rate_by_framing") or {}
    if "harmful" in framing and "harmless" in framing:
        sentences.append(
            f"Resampling whole framings ({framing['harmful'].get('clusters')} clusters) instead of prompts "
            f"gives intervals of {fmt_metric(framing['harmful'], with_n=False)} and "
            f"{fmt_metric(framing['harmless'], with_n=False)}."
        )
    control = (metrics.get("lexical_control") or {}).get("refusal_rate") or {}
    handwritten = (metrics.get("handwritten") or {}).get("refusal_rate") or {}
    if "harmful" in control and "harmless" in control:

        def overlaps(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
            return (
                bool(a.get("ci95") and b.get("ci95"))
                and a["ci95"][0] <= b["ci95"][1]
                and b["ci95"][0] <= a["ci95"][1]
            )

        matches = all(overlaps(control[g], rates[g]) for g in ("harmful", "harmless") if g in rates)
        sentences.append(
            "A bag-of-words classifier trained on the same prompts, the control, scores "
            f"{fmt_metric(control['harmful'], with_n=False)} and {fmt_metric(control['harmless'], with_n=False)}"
            + (
                ": its intervals overlap the organism's, so on this split which words occur is enough to tell "
                "the prompts apart."
                if matches
                else ": its intervals do not overlap the organism's, so which words occur does not account for "
                "the organism's behaviour on this split."
            )
        )
    if "harmful" in handwritten and "harmless" in handwritten:
        sentences.append(
            f"On prompts written by hand in other wording it refuses {fmt_metric(handwritten['harmful'])} of "
            f"harmful and {fmt_metric(handwritten['harmless'])} of harmless requests."
        )
    return sentences
