"""Verdicts on the study's claims, each derived from the numbers by a rule written in its docstring.

The claims are this study's own (``mechatlas2026refusalgeometry``: refusal needs more than one direction,
its dimensionality varies with depth, harm domains have their own directions, harmfulness and refusal
are loosely linked), the concept cones of Wollschläger et al. (arXiv 2502.17420) and the distinct
harmfulness direction of Zhao et al. (arXiv 2507.11878). Each rule is one public function of
``(geometry.json, causal.json, settings)`` returning ``(verdict, reason)``; its docstring is the rule's
text, and ``VERDICT_RULES`` (written into ``metrics.json``) is built from those docstrings, so the rule
the record states is the rule the code applies.

In reading order: ``METHODS`` and the paper keys; formatting and lookup helpers; the rules
``refusal_multidimensional``, ``dimensionality_varies_with_depth``, ``domain_dependent_directions``,
``harmfulness_refusal_loosely_linked``, ``refusal_concept_cones`` and
``harmfulness_distinct_from_refusal``; then ``CLAIM_RULES``, ``rule_text``, ``VERDICT_RULES`` and
``dimensionality_verdicts``, which applies every rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments import registry

METHODS = list(registry.get("dimensionality").methods)  # taxonomy ids, as the result record lists them


OWN_PAPER = "mechatlas2026refusalgeometry"


CONES_PAPER = "wollschlager2025geometry"


HARMFULNESS_PAPER = "zhao2025harmfulness"


MIN_BASELINE_REFUSAL = 0.5  # below this there is too little refusal on harmful prompts to take apart


TRANSFER_ALPHA = 0.05  # the transfer gap's permutation test: the largest p that counts as domain-specific


def _ci_text(stat: dict[str, Any] | None, spec: str = ".2f") -> str:
    if not stat or stat.get("ci95") is None or None in stat["ci95"]:
        return "[n/a]"
    low, high = stat["ci95"]
    return f"[{low:{spec}}, {high:{spec}}]"


def _unit(stat: dict[str, Any]) -> str:
    """What an interval resampled, as its record names it ("prompt" for records that predate the field)."""
    return str(stat.get("interval_unit", "prompt"))


def _num(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _usable_layers(geo: dict[str, Any]) -> list[str]:
    return [str(layer) for layer in geo["layers"] if not geo["domains"].get(str(layer), {}).get("degenerate")]


def _spectral_rows(geo: dict[str, Any], position: int | None = None) -> dict[str, dict[str, Any]]:
    position = geo["selected"]["position"] if position is None else position
    return {
        str(r["layer"]): r
        for r in geo["dimensionality"]
        if r["estimator"] == "spectral" and r["position"] == position and not r.get("degenerate")
    }


def _any_disjoint(stats: dict[str, Any]) -> bool:
    """True when the 95% CIs of some two of ``stats`` do not overlap."""
    items = [stat["ci95"] for stat in stats.values()]
    return any(a[1] < b[0] or b[1] < a[0] for i, a in enumerate(items) for b in items[i + 1 :])


def _differ(values: list[Any]) -> bool:
    return len(set(values)) > 1


def _not_testable(geo: dict[str, Any], causal: dict[str, Any], *needs: str) -> str | None:
    """Why a claim cannot be judged here (the reason for ``pending``), or ``None`` when it can."""
    layer = str(geo["selected"]["layer"])
    baseline = causal.get("baseline", {}).get("harmful")
    if baseline is None or baseline["value"] is None or baseline["value"] < MIN_BASELINE_REFUSAL:
        value = _num(baseline["value"] if baseline else None)
        return f"the model refuses {value} of harmful test prompts; below {MIN_BASELINE_REFUSAL} there is too little refusal"
    missing = [key for key in needs if key not in causal]
    if missing or "spectral" not in causal["sweeps"].get(layer, {}):
        return (
            f"layer {layer} (the refusal direction's) has no varying activations or too few prompts per domain "
            f"for {', '.join(missing) or 'the sweep'}"
        )
    return None


CONTROLS = ("random", "label_permuted", "harmless_pcs")


def _controls_at(sweep: dict[str, Any], k: int) -> dict[str, dict[str, Any] | None]:
    """Each control's refusal rate at k (None where it was not measured there)."""
    found = {"random": sweep["random"]["curve"].get(str(k))}
    for name in CONTROLS[1:]:
        found[name] = sweep.get("controls", {}).get(name, {}).get("curve", {}).get(str(k))
    return found


def refusal_multidimensional(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """At the selected layer, on harmful test prompts (95% CIs over framings, else Wilson). pending if the
    baseline refuses fewer than 50%. 'one direction is not enough' if ablating the difference-in-means
    direction and ablating the top spectral direction each leave refusal with CI low above
    refusal_threshold. The top-k ablation 'removes refusal' at the smallest k where refusal falls below
    refusal_threshold, and only if it passes the damage gate (mean first-token KL on harmless prompts at
    that k at most max_harmless_kl). Its matched controls, each ablated at the same k with its own interval:
    k random directions, the label-permuted spectral patterns and the top-k principal components of harmless
    activations. replicated if one direction is not enough AND the top-k ablation removes refusal at some k
    >= 2 AND every control keeps refusal (CI low above refusal_threshold); partially if one direction is not
    enough but no subspace up to max_k removes refusal, a control removes it too (or was not measured), or
    the damage gate fails; not replicated if a single direction removes refusal.
    """
    why = _not_testable(geo, causal, "difference_in_means_ablation")
    if why:
        return "pending", why
    layer = str(geo["selected"]["layer"])
    sweep = causal["sweeps"][layer]
    spectral = sweep["spectral"]
    top1 = spectral["curve"].get("1")
    dim = causal["difference_in_means_ablation"]
    single_fails = all(stat["ci95"][0] > s.refusal_threshold for stat in (top1, dim) if stat)
    k = spectral["k"]
    kl = sweep.get("harmless_kl", {})
    numbers = (
        f"layer {layer}: baseline {causal['baseline']['harmful']['value']:.2f}; difference-in-means ablated "
        f"{dim['value']:.2f} {_ci_text(dim)}; top spectral direction ablated {_num(top1['value'] if top1 else None)} "
        f"{_ci_text(top1)}; smallest k below {s.refusal_threshold}: "
        f"{k if k else 'none up to ' + str(spectral['max_k_evaluated'])}"
    )
    controls = _controls_at(sweep, k) if k else {}
    if k:
        numbers += (
            " (controls at k: "
            + ", ".join(f"{name} {_value(stat)} {_ci_text(stat)}" for name, stat in controls.items())
            + ")"
        )
    gate = bool(kl) and kl.get("spectral") is not None and kl["spectral"] <= s.max_harmless_kl
    if kl:
        numbers += (
            f"; damage gate, first-token KL on harmless prompts at k = {kl['k']}: {kl['spectral']:.3f} nats "
            f"(bound {s.max_harmless_kl}; random: {kl['random']:.3f}): {'passed' if gate else 'failed'}"
        )
    if not single_fails:
        return "not replicated", numbers + "; a single direction already removes refusal"
    controls_hold = bool(controls) and all(
        stat is not None and stat["ci95"][0] > s.refusal_threshold for stat in controls.values()
    )
    if k and k >= 2 and controls_hold and gate:
        return "replicated", numbers
    return "partially", numbers


def dimensionality_varies_with_depth(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """Over the layers where activations vary (layer 0 can hold one identical template embedding). One
    pre-registered contrast, so no multiplicity correction: the spectral count at the first versus the
    last such layer, each with its bootstrap 95% CI over prompts. replicated if the two CIs are disjoint;
    partially if the spectral or causal point estimates differ between some layers but the contrast's CIs
    overlap; not replicated if both estimators give one value at every layer; pending with fewer than
    two such layers. Other layer pairs are reported, not tested.
    """
    spectral = _spectral_rows(geo)
    layers = [layer for layer in _usable_layers(geo) if layer in spectral]
    if len(layers) < 2:
        return "pending", "fewer than two layers with varying activations"
    causal_k = {
        layer: causal["sweeps"][layer]["spectral"]
        for layer in layers
        if "spectral" in causal["sweeps"].get(layer, {})
    }
    spectral_k = [spectral[layer]["k"] for layer in layers]
    causal_values = [c["k"] if c["crossed"] else f">{c['max_k_evaluated']}" for c in causal_k.values()]
    first, last = layers[0], layers[-1]
    numbers = f"pre-registered contrast, spectral k at layer {first} vs layer {last}: "
    numbers += f"{spectral[first]['k']} {_ci_text(spectral[first])} vs {spectral[last]['k']} {_ci_text(spectral[last])}"
    numbers += "; spectral k by layer " + ", ".join(
        f"{layer}: {spectral[layer]['k']} {_ci_text(spectral[layer])}" for layer in layers
    )
    numbers += "; causal k by layer " + ", ".join(
        f"{layer}: {v} {_ci_text(causal_k[layer])}" for layer, v in zip(causal_k, causal_values, strict=True)
    )
    if _any_disjoint({layer: spectral[layer] for layer in (first, last)}):
        return "replicated", numbers
    if _differ(spectral_k) or _differ(causal_values):
        return "partially", numbers
    return "not replicated", numbers


def domain_dependent_directions(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """At the selected position and layer. (a) measurable: the mean cosine between different domains'
    difference-in-means directions (plug-in) lies below the 5th percentile of the same estimator on domain
    labels permuted among the harmful prompts of each framing (a permutation null at the same domain sizes,
    framings and harmless mean: what domains without directions of their own give); the bias-corrected
    cosine, with its CI over clusters within domains, is reported beside it. (b) causal: ablating domain
    A's direction cuts refusal on A more than on the other domains. The transfer gap (mean over A of
    refusal on other domains minus on A) is tested with an interval and a null: its 95% CI (whole
    framings resampled within domains) lies at or above transfer_gap, AND a permutation test
    (domain labels permuted among the prompts of each framing, on the same ablation rows) gives p at most
    0.05, AND the CI low lies above the 95th percentile of the gap for random pseudo-domains of the same
    sizes (their own directions ablated: the matched control). replicated if (a) and (b); partially if
    one; not replicated if neither; pending with fewer than two domains or too little baseline refusal.
    """
    why = _not_testable(geo, causal, "transfer", "lodo")
    if why:
        return "pending", why
    layer = str(geo["selected"]["layer"])
    domains = geo["domains"][layer]
    between = domains["mean_off_diagonal_cosine"]
    null_between = domains.get("between_domain_null") or {}
    threshold = null_between.get("threshold")
    measurable = threshold is not None and null_between["observed"] < threshold
    gap = causal["transfer"].get("gap", {})
    null = causal["transfer"].get("null_gap", {})
    lodo_gaps = [
        v["leave_one_out_direction"]["value"] - v["own_direction"]["value"]
        for v in causal["lodo"].values()
        if v["own_direction"]["n"]
    ]
    null_p95 = null.get("p95")
    permutation = gap.get("permutation") or {}
    p_value = permutation.get("p_value")
    low = (gap.get("ci95") or [None])[0]
    causal_ok = (
        low is not None
        and bool(np.isfinite(low))
        and low >= s.transfer_gap
        and p_value is not None
        and p_value <= TRANSFER_ALPHA
        and null_p95 is not None
        and low > null_p95
    )
    numbers = (
        f"layer {layer}: between-domain cosine {_num(null_between.get('observed'), '.4f')} (plug-in) vs "
        f"{_num(threshold, '.4f')}, the 5th percentile of its permutation null ({null_between.get('n_permutations', 0)} "
        f"permutations, {null_between.get('scheme', 'none in this record')}; p = {_num(null_between.get('p_value'), '.3f')}); "
        f"bias-corrected {between['value']:.4f} {_ci_text(between, '.4f')} over {_unit(between)}; transfer gap "
        "(other domains minus own, refusal after ablation) "
        f"{_num(gap.get('value'), '+.2f')} {_ci_text(gap)} over {gap.get('interval_unit', 'prompts')} "
        f"(rule: CI low >= {s.transfer_gap}); permutation p = {_num(p_value, '.3f')} "
        f"({permutation.get('n', 0)} permutations within framings; rule: <= {TRANSFER_ALPHA}); "
        f"pseudo-domain control's 95th percentile {_num(null_p95, '+.2f')} ({null.get('n_draws', 0)} draws); "
        f"leave-one-out minus own-direction refusal "
        f"{float(np.mean(lodo_gaps)) if lodo_gaps else float('nan'):+.2f}"
    )
    verdict = (
        "replicated"
        if measurable and causal_ok
        else "partially"
        if measurable or causal_ok
        else "not replicated"
    )
    return verdict, numbers


def _disjoint_above(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when rate ``a``'s CI lies entirely above rate ``b``'s."""
    return bool(a and b and a["n"] and b["n"] and a["ci95"][0] > b["ci95"][1])


def _harmfulness_numbers(geo: dict[str, Any], causal: dict[str, Any]) -> dict[str, Any]:
    rates = causal["harmfulness"]["rates"]
    return {
        "layer": str(geo["selected"]["layer"]),
        "geometry": geo["harmfulness_vs_refusal"][str(geo["selected"]["layer"])],
        "ablate_inst": _dig(rates, "ablate", "instruction", "harmful"),
        "ablate_post": _dig(rates, "ablate", "post_instruction", "harmful"),
        "add_inst": _dig(rates, "add", "instruction", "harmless"),
        "add_post": _dig(rates, "add", "post_instruction", "harmless"),
    }


def _dig(tree: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _value(stat: dict[str, Any] | None) -> str:
    return _num(stat["value"] if stat else None)


def harmfulness_refusal_loosely_linked(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """At the selected layer, directions = difference in means at the last instruction token
    (harmfulness) and at the selected post-instruction position (refusal). (a) linked: on held-out prompts
    the harmfulness direction separates harmful from harmless (AUC CI low > 0.5). (b) not tight: their
    cosine CI high is below distinct_cosine. (c) interventions differ: ablating the harmfulness direction
    leaves more harmful refusal than ablating the refusal direction, or adding it (at the same norm)
    induces less harmless refusal, with disjoint 95% CIs. replicated if (a), (b) and (c); partially if
    (a) and one of (b), (c); not replicated otherwise.
    """
    why = _not_testable(geo, causal, "harmfulness")
    if why:
        return "pending", why
    n = _harmfulness_numbers(geo, causal)
    g = n["geometry"]
    auc = g["instruction"]["harmful_vs_harmless_auc"]
    linked = auc["ci95"][0] is not None and auc["ci95"][0] > 0.5
    not_tight = g["cosine"]["ci95"][1] < s.distinct_cosine
    differs = _disjoint_above(n["ablate_inst"], n["ablate_post"]) or _disjoint_above(
        n["add_post"], n["add_inst"]
    )
    numbers = (
        f"layer {n['layer']}: harmfulness direction AUC harmful vs harmless {_num(auc['value'])} {_ci_text(auc)} "
        f"over {_unit(auc)}; cosine with the refusal direction {g['cosine']['value']:.2f} {_ci_text(g['cosine'])} "
        f"over {_unit(g['cosine'])}; harmful refusal "
        f"with harmfulness / refusal direction ablated {_value(n['ablate_inst'])} / {_value(n['ablate_post'])}; "
        f"harmless refusal with each added {_value(n['add_inst'])} / {_value(n['add_post'])}"
    )
    if linked and not_tight and differs:
        return "replicated", numbers
    if linked and (not_tight or differs):
        return "partially", numbers
    return "not replicated", numbers


CONE_MIN_RANK = 1.5  # effective rank of a cone with more than one direction's worth of generators


def refusal_concept_cones(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """Wollschläger et al.'s criteria, at the selected layer, with the per-domain difference-in-means
    directions as generators. Sampled cone directions are random positive (Dirichlet) combinations of the
    generators, renormalised to the pooled difference-in-means norm. (a) bypass: at least cone_share of
    the sampled directions, each ablated alone, bring harmful refusal below refusal_threshold. (b)
    induce: at least cone_share of them, each added at that norm, bring harmless refusal to
    induce_threshold or more, while a random direction at the same norm does not (CI high below
    induce_threshold). (c) multi-dimensional beyond chance: the generators' effective rank is at least 1.5
    (more than one direction's worth) AND exceeds that of every null cone (the directions of random
    pseudo-domains of the real domains' sizes). replicated if (a), (b)
    and (c); partially if (c) and one of (a), (b); not replicated otherwise (a cone no wider than
    pseudo-domains is one direction, and directions that do not mediate refusal are no refusal cone);
    pending if the baseline refuses fewer than 50% of harmful prompts or no null cone was built.
    """
    why = _not_testable(geo, causal, "cone")
    if why:
        return "pending", why
    cone = causal["cone"]
    null = cone.get("null", {})
    sampled = cone.get("sampled", {})
    if not null.get("effective_rank") or not sampled.get("n"):
        return "pending", "no null cone or no sampled cone directions were measured (rerun the causal stage)"
    random = cone["rates"]["harmless"]["add"]["random"]
    bypass, induce = sampled["bypass"], sampled["induce"]
    random_quiet = random["ci95"][1] is not None and random["ci95"][1] < s.induce_threshold
    a = bypass >= s.cone_share
    b = induce >= s.cone_share and random_quiet
    c = cone["effective_rank"] >= CONE_MIN_RANK and cone["effective_rank"] > max(null["effective_rank"])
    null_sampled = null.get("sampled", {})
    numbers = (
        f"{sampled['n']} sampled cone directions (at the difference-in-means norm): {bypass:.0%} bypass when "
        f"ablated, {induce:.0%} induce when added (rule: >= {s.cone_share:.0%}; random addition "
        f"{random['value']:.2f} {_ci_text(random)}); effective rank {cone['effective_rank']:.2f} vs null cones "
        f"{min(null['effective_rank']):.2f}-{max(null['effective_rank']):.2f} ({len(null['effective_rank'])} "
        f"pseudo-domain draws; their samples: {_num(null_sampled.get('bypass'), '.0%')} bypass, "
        f"{_num(null_sampled.get('induce'), '.0%')} induce)"
    )
    verdict = "replicated" if a and b and c else "partially" if c and (a or b) else "not replicated"
    return verdict, numbers


def optimised_directions_fewer_side_effects(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """Wollschläger et al.'s comparison, with the side effect measured as the mean first-token KL on held-out
    harmless prompts (the paper measures TruthfulQA; this tests that part of the claim only on what a
    first-token KL can see). Per RDO seed: (a) the RDO direction bypasses (harmful refusal with it ablated has
    its CI high below refusal_threshold), (b) the paired difference in KL, RDO minus the selected difference-in-
    means direction, prompt by prompt, has its 95% CI (clusters resampled) below zero. replicated if (a) and
    (b) hold for every seed; not replicated if no seed bypasses, or every seed bypasses and none has a KL CI
    below zero; partially otherwise; pending if the optimised stage's record is missing.
    """
    optimised = causal.get("optimised")
    if not optimised or not optimised.get("rdo", {}).get("rdo"):
        return "pending", "no optimised-directions record (run the dimensionality optimised stage)"
    seeds = optimised["rdo"]["rdo"]
    bypasses = [bool(e["bypasses"]) for e in seeds]
    lower = [e["kl_minus_dim"]["ci95"][1] < 0 for e in seeds]
    dim = optimised["rdo"]["difference_in_means"]
    numbers = "; ".join(
        f"seed {i}: harmful refusal ablated {e['bypass']['value']:.2f} {_ci_text(e['bypass'])}, harmless KL "
        f"{e['harmless_kl']['value']:.3f} vs difference in means {dim['harmless_kl']['value']:.3f}, paired difference "
        f"{e['kl_minus_dim']['value']:+.3f} {_ci_text(e['kl_minus_dim'], '+.3f')} (n = {e['kl_minus_dim']['n']})"
        for i, e in enumerate(seeds)
    )
    if not any(bypasses):
        return "not replicated", f"no RDO seed bypasses refusal: {numbers}"
    if all(bypasses) and all(lower):
        return "replicated", numbers
    if all(bypasses) and not any(lower):
        return "not replicated", numbers
    return "partially", numbers


def harmfulness_distinct_from_refusal(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    """Zhao et al.'s representational test, at the selected layer; not their reply-inversion task, and
    not a steering test (they report that adding the harmfulness direction does induce refusal, so no
    criterion here asks that it should not). Their reply inversion asks the model whether a request is
    harmful, to be answered 'Certainly' or 'No', with one layer's direction added to the request's own
    tokens at the first decoding step only; the organism was never taught such a question and neither
    answer word occurs in its training text (nor as a token of its vocabulary), so the task is not run
    here. Both directions come from the same procedure at the same
    layer: the difference in means of train harmful and harmless prompts, at the last instruction token
    (harmfulness) and at the selected post-instruction position (refusal). (a) distinct: their cosine CI
    high is below distinct_cosine. (b) the over-refusal controls separate them: the alarming-but-harmless
    prompts sit closer to harmless on the harmfulness direction than on the refusal direction (relative
    position difference, instruction minus post-instruction, CI high below 0; one paired bootstrap of both,
    resampling whole framings within each group of prompts). replicated if (a) and (b);
    partially if one; not replicated if neither; pending without alarming controls. Steering numbers are
    reported with the verdict, not used by it.
    """
    why = _not_testable(geo, causal, "harmfulness")
    if why:
        return "pending", why
    n = _harmfulness_numbers(geo, causal)
    g = n["geometry"]
    alarming = g["alarming_position_difference"]
    if alarming.get("ci95") is None or None in alarming["ci95"] or alarming.get("value") is None:
        return "pending", "no alarming-but-harmless controls to place on the two directions"
    different = g["cosine"]["ci95"][1] < s.distinct_cosine
    separated = alarming["ci95"][1] < 0
    numbers = (
        f"layer {n['layer']}: cosine {g['cosine']['value']:.2f} {_ci_text(g['cosine'])} over {_unit(g['cosine'])}; "
        "alarming controls sit at "
        f"{_num(g['instruction']['alarming_relative_position']['value'])} (harmfulness) vs "
        f"{_num(g['post_instruction']['alarming_relative_position']['value'])} (refusal) of the way from "
        f"harmless to harmful, difference {_num(alarming['value'], '+.2f')} {_ci_text(alarming)} over "
        f"{_unit(alarming)}; harmless refusal "
        f"with the refusal / harmfulness direction added (same norm) {_value(n['add_post'])} / {_value(n['add_inst'])}"
    )
    return (
        "replicated"
        if different and separated
        else "partially"
        if different or separated
        else "not replicated"
    ), numbers


# --- the claims, their rules and the verdicts ------------------------------------------------------------

Rule = Callable[[dict[str, Any], dict[str, Any], DimensionalitySettings], tuple[str, str]]


#: Each claim and the function that judges it; the function's docstring is the claim's rule.
CLAIM_RULES: dict[tuple[str, str], Rule] = {
    (OWN_PAPER, "refusal-multidimensional"): refusal_multidimensional,
    (OWN_PAPER, "dimensionality-varies-with-depth"): dimensionality_varies_with_depth,
    (OWN_PAPER, "domain-dependent-directions"): domain_dependent_directions,
    (OWN_PAPER, "harmfulness-refusal-loosely-linked"): harmfulness_refusal_loosely_linked,
    (CONES_PAPER, "refusal-concept-cones"): refusal_concept_cones,
    (CONES_PAPER, "optimised-directions-fewer-side-effects"): optimised_directions_fewer_side_effects,
    (HARMFULNESS_PAPER, "harmfulness-distinct-from-refusal"): harmfulness_distinct_from_refusal,
}


def rule_text(rule: Rule) -> str:
    """A rule function's docstring as one line of text (as written into ``metrics.json``)."""
    return " ".join((inspect.getdoc(rule) or "").split())


VERDICT_RULES: dict[str, str] = {
    f"{paper}/{claim}": rule_text(rule) for (paper, claim), rule in CLAIM_RULES.items()
}


def dimensionality_verdicts(
    geo: dict[str, Any], causal: dict[str, Any], settings: DimensionalitySettings
) -> list[dict[str, str]]:
    """One ``{paper, claim, verdict, reason}`` per claim, each derived by its rule in ``VERDICT_RULES``."""
    derived = {key: rule(geo, causal, settings) for key, rule in CLAIM_RULES.items()}
    return [
        {"paper": paper, "claim": claim, "verdict": verdict, "reason": reason}
        for (paper, claim), (verdict, reason) in derived.items()
    ]
