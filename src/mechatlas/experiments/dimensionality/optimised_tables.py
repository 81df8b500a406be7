"""The optimised-directions part of the dimensionality page: four tables and the sentences above them.

Each reads ``metrics["optimised"]`` (the ``optimised`` stage's record, ``optimised.json``); every rate is
shown with its 95% interval and n, every mean with its bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.markdown import fmt_estimate, fmt_metric, fmt_number, md_text, table


def _rate(metric: Mapping[str, Any] | None) -> str:
    return "—" if metric is None else fmt_metric(metric, with_n=False)


def _mean(metric: Mapping[str, Any] | None) -> str:
    if metric is None or metric.get("n", 0) == 0:
        return "—"
    return fmt_estimate(metric["value"], metric["ci95"])


def _rdo_table(part: Mapping[str, Any]) -> list[str]:
    rows = []
    entries = [("difference in means (selected)", part["difference_in_means"], None)]
    entries += [(f"RDO, seed {i}", e, e["cosine_with_dim"]) for i, e in enumerate(part["rdo"])]
    for name, e, cosine in entries:
        rows.append(
            [
                md_text(name),
                "1" if cosine is None else fmt_number(cosine),
                _rate(e["bypass"]),
                _rate(e["induce"]),
                _mean(e.get("harmless_kl")),
                "—" if "kl_minus_dim" not in e else fmt_metric(e["kl_minus_dim"], with_n=False),
                _mean(e.get("reply_ce_rise")),
            ]
        )
    cos = part["cosine_with_dim"]
    return [
        "**RDO against the difference in means.** Bypass: harmful refusal with the direction ablated at every "
        "layer (lower is a stronger bypass). Induce: harmless refusal with it added at the difference-in-means "
        "norm to the selected layer. Cost on harmless prompts: the first-token KL and the rise in the "
        "cross-entropy of their own replies. "
        f"Cosine with the difference in means over {cos['n_seeds']} seeds: mean {fmt_number(cos['mean'])}, "
        f"range {fmt_number(cos['min'])}–{fmt_number(cos['max'])}.",
        "",
        *table(
            [
                "direction",
                "cosine with DIM",
                "bypass",
                "induce",
                "harmless KL (nats)",
                "KL minus DIM's, paired",
                "reply CE rise",
            ],
            rows,
        ),
    ]


def _cone_table(part: Mapping[str, Any]) -> list[str]:
    null = {e["m"]: e for e in part["null"]}
    rows = []
    for e in part["real"]:
        n = null.get(e["m"])
        rows.append(
            [
                str(e["m"]),
                f"{fmt_number(e['held_out']['share_passing'])} ({'holds' if e['held_out']['holds'] else 'fails'})",
                f"{fmt_number(e['train']['share_passing'])} ({'holds' if e['train']['holds'] else 'fails'})",
                "—"
                if n is None
                else f"{fmt_number(n['train']['share_passing'])} "
                f"({'holds' if n['train']['holds'] else 'fails'})",
            ]
        )
    return [
        "**Refusal cones.** For each dimension m, the share of the cone's evaluated directions (its basis and "
        "fixed samples) that both bypass and induce. The null optimises the same cone against pseudo-labels "
        "(a random half of the harmful train prompts must comply under ablation, the other half keep "
        "refusing); it is judged on its train prompts, beside the real cone on its train prompts. "
        f"Largest m that holds: {part['largest_m_real']} on held-out prompts, "
        f"{part['largest_m_real_train']} on train prompts; null {part['largest_m_null']}.",
        "",
        *table(["m", "real cone, held out", "real cone, train", "null cone, train"], rows),
    ]


def _bypass_table(part: Mapping[str, Any]) -> list[str]:
    rows = []
    for kind in ("unconstrained", "constrained"):
        for e in part[kind]:
            s = e["subspace"]
            rows.append(
                [
                    kind,
                    str(e["m"]),
                    _rate(s["harmful"]),
                    _rate(e["random"]["harmful"]),
                    _rate(s.get("induce_under_ablation")),
                    fmt_number(s["overlap_with_readout"]),
                    _mean(s.get("harmless_kl")),
                ]
            )
    return [
        "**The smallest subspace whose ablation removes refusal.** Harmful refusal with an optimised "
        "m-dimensional subspace ablated, against a random m-dimensional subspace under the same constraint. "
        f"Constrained: {md_text(part['constraint'])}, with a retain term on the model's own replies. The read-out "
        "check adds the selected direction while the subspace is ablated: it induces refusal only if what "
        "reads the decision out is intact. "
        f"Smallest m removing refusal: {part['smallest_m_unconstrained'] or 'none up to the largest m'} "
        f"unconstrained, {part['smallest_m_constrained'] or 'none up to the largest m'} constrained.",
        "",
        *table(
            [
                "search",
                "m",
                "refusal, subspace ablated",
                "refusal, random subspace",
                "read-out check",
                "overlap with read-out",
                "harmless KL (nats)",
            ],
            rows,
        ),
    ]


def _multi_table(part: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            md_text(name),
            str(e["dimension"]),
            _rate(e.get("harmful")),
            _rate(e.get("harmless")),
            _rate(e.get("alarming")),
            _mean(e.get("harmless_kl")),
            _mean(e.get("reply_ce_rise")),
        ]
        for name, e in part.items()
    ]
    return [
        "**Multi-direction ablation.** The span of each set ablated at every layer: refusal on harmful, "
        "harmless and alarming-but-harmless test prompts, and the cost on harmless prompts.",
        "",
        *table(
            ["directions", "dimension", "harmful", "harmless", "alarming", "harmless KL", "reply CE rise"],
            rows,
        ),
    ]


def optimised_headline(part: Mapping[str, Any]) -> list[str]:
    """The four tables, under one heading."""
    n = part["n"]
    return [
        "### Optimised directions",
        "",
        f"Fitted on {n['train_harmful']} harmful and {n['train_harmless']} harmless train prompts; measured on "
        f"{n['test_harmful']} harmful, {n['test_harmless']} harmless and {n['test_alarming']} alarming test "
        f"prompts. Judge: {md_text(part['judge'])}.",
        "",
        *_rdo_table(part["rdo"]),
        *_cone_table(part["cones"]),
        *_bypass_table(part["bypass"]),
        *_multi_table(part["multi"]),
    ]


def optimised_findings(part: Mapping[str, Any]) -> list[str]:
    """One or two sentences: the cone's largest m against its null, and the constrained smallest m."""
    cones, bypass = part["cones"], part["bypass"]
    found = bypass["smallest_m_constrained"]
    largest = bypass["constrained"][-1]["m"] if bypass["constrained"] else 0
    return [
        f"Gradient-optimised refusal cones held up to m = {cones['largest_m_real']} on held-out prompts "
        f"(pseudo-label null: m = {cones['largest_m_null']}).",
        f"Under the read-out constraint, the smallest subspace whose ablation removes refusal has m = {found}."
        if found
        else f"Under the read-out constraint, no optimised subspace up to m = {largest} removed refusal.",
    ]
