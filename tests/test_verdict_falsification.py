"""Every verdict rule can fail: each claim on a planted organism where it holds and on one where it does not.

The organisms (``planted_organisms``) are synthetic models with a known refusal read-out; the geometry,
the causal analyses and the verdicts are the project's real code. Each test names the mechanism planted
and the verdict the rule must reach; none of the rules was tuned to these organisms (their thresholds are
params.yaml's defaults).
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import pandas as pd
import pytest
import torch

from mechatlas.experiments.dimensionality.transfer import transfer_gap
from mechatlas.experiments.dimensionality.verdicts import (
    dimensionality_varies_with_depth,
    domain_dependent_directions,
    harmfulness_distinct_from_refusal,
    harmfulness_refusal_loosely_linked,
    refusal_concept_cones,
    refusal_multidimensional,
)
from mechatlas.experiments.refusal_direction.summaries import mean_with_ci
from mechatlas.experiments.refusal_direction.verdicts import VerdictInputs, replication_verdicts
from mechatlas.interp.directions import random_direction
from mechatlas.interp.interventions import ablation_hooks, addition_hooks
from mechatlas.interp.scores import kl_divergence
from mechatlas.stats import rate
from planted_organisms import (
    SETTINGS,
    Cfg,
    Organism,
    PlantedBridge,
    basis,
    build,
    meter_for,
    patch_forward,
    planted_model,
    run_study,
)

D, A = 32, 6.0
_B = basis(D, 14, 1)
R, S, C, H = _B[0], _B[1:5], _B[5:9], _B[9]
CONE_WEIGHTS = torch.tensor([[1, 0.2, 0.2], [0.2, 1, 0.2], [0.2, 0.2, 1], [1, 1, 1.0]], dtype=torch.float64)


def _bridge(directions: torch.Tensor, threshold: float, readout: str = "any_of", **kw: Any) -> PlantedBridge:
    return PlantedBridge(Cfg(2, D), directions, threshold, readout, **kw)  # type: ignore[arg-type]


def organism(name: str) -> Organism:
    """The planted mechanisms, by name (a fresh bridge each time: it stores the test prompts' activations)."""
    one_means = torch.stack([A * R] * 4)
    redundant_means = torch.stack([A * S[i] for i in range(4)])
    if name == "one direction":  # refusal reads x·r; every domain shifts along r
        return Organism(_bridge(R[None], A / 2), one_means)
    if name == "one direction plus domain content":  # as above, plus large domain-specific content
        return Organism(_bridge(R[None], A / 2), torch.stack([A * R + 2 * A * C[i] for i in range(4)]))
    if name == "redundant directions":  # domain i shifts along s_i; any s_i suffices to refuse
        return Organism(_bridge(S, A / 2), redundant_means)
    if name == "redundant directions, far from threshold":  # added at the pooled norm, no s_i gets near it
        return Organism(_bridge(S, A), 2 * redundant_means)
    if name == "cone":  # refusal needs every s_i (i < 3); domains weigh them differently
        return Organism(_bridge(S[:3], A / 4, "all_of"), 3 * A * CONE_WEIGHTS @ S[:3].double())
    if name == "redundant directions, compliance in the same subspace":
        q = S.sum(0) / S.sum(0).norm()  # harmless replies need +x·(-q): ablating S breaks them
        return Organism(_bridge(S, A / 2, sure_direction=-q), redundant_means, harmless_mean=-A * q)
    if name == "one direction, compliance on the same direction":
        return Organism(_bridge(R[None], A / 2, sure_direction=-R), one_means, harmless_mean=-A * R)
    if name == "depth: one direction, then redundant":
        return Organism(_bridge(S, A / 2), redundant_means, layer_means=(one_means, redundant_means))
    if name == "depth: redundant at both layers":
        return Organism(_bridge(S, A / 2), redundant_means, layer_means=(redundant_means, redundant_means))
    if name == "harmfulness apart from refusal":  # instruction token reads h ⊥ r; controls only look harmful
        return Organism(
            _bridge(R[None], A / 2),
            one_means,
            instruction_means=torch.stack([A * H] * 4),
            alarming_instruction=0.1,
            alarming_post=0.6,
        )
    if name == "harmfulness is refusal":  # one representation read at both tokens
        return Organism(_bridge(R[None], A / 2), one_means, alarming_post=0.6, instruction_is_post=True)
    if name == "no harmfulness at the instruction token":
        return Organism(
            _bridge(R[None], A / 2), one_means, instruction_means=torch.zeros(4, D), alarming_post=0.6
        )
    raise KeyError(name)


@cache
def _study(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        patch_forward(mp)
        return run_study(organism(name))


def verdict(rule: Any, name: str) -> str:
    geo, causal = _study(name)
    return rule(geo, causal, SETTINGS)[0]


# --- the study's own claims, Wollschläger et al. and Zhao et al. ------------------------------------------


def test_multidimensional_refusal_is_replicated_on_redundant_directions_and_not_on_one() -> None:
    assert verdict(refusal_multidimensional, "redundant directions") == "replicated"
    assert verdict(refusal_multidimensional, "one direction") == "not replicated"


def test_the_damage_gate_keeps_an_ablation_that_breaks_compliance_from_removing_refusal() -> None:
    geo, causal = _study("redundant directions, compliance in the same subspace")
    found, reason = refusal_multidimensional(geo, causal, SETTINGS)
    assert "damage gate" in reason and "failed" in reason
    assert found == "partially"


def test_depth_is_replicated_when_the_count_changes_between_layers_and_not_when_it_does_not() -> None:
    assert verdict(dimensionality_varies_with_depth, "depth: one direction, then redundant") == "replicated"
    assert verdict(dimensionality_varies_with_depth, "depth: redundant at both layers") == "not replicated"


def test_domain_directions_are_replicated_on_per_domain_mechanisms_and_not_on_one_direction() -> None:
    assert verdict(domain_dependent_directions, "redundant directions") == "replicated"
    assert verdict(domain_dependent_directions, "one direction") == "not replicated"


def test_the_transfer_gap_has_an_interval_over_framings_a_permutation_null_and_a_pseudo_domain_control() -> (
    None
):
    _, causal = _study("one direction")
    gap, null = causal["transfer"]["gap"], causal["transfer"]["null_gap"]
    assert gap["ci95"][0] <= gap["value"] <= gap["ci95"][1]
    assert gap["interval_unit"] == "clusters within domains" and gap["n_clusters"] == 8
    assert gap["permutation"]["n"] == SETTINGS.n_permutations and gap["permutation"]["p_value"] is not None
    assert null["n_draws"] == SETTINGS.null_cones and null["p95"] is not None


def test_the_transfer_test_rejects_its_null_on_per_domain_mechanisms_and_not_on_one_direction() -> None:
    """Planted positive: each domain refuses through its own direction, so ablating it frees that domain
    only; planted negative: one shared direction frees every domain alike."""
    positive = _study("redundant directions")[1]["transfer"]["gap"]
    negative = _study("one direction")[1]["transfer"]["gap"]
    assert positive["ci95"][0] >= SETTINGS.transfer_gap and positive["permutation"]["p_value"] <= 0.05
    assert negative["ci95"][0] < SETTINGS.transfer_gap and negative["permutation"]["p_value"] > 0.05


def _gap_rows(*, clustered: bool) -> pd.DataFrame:
    """Ablation rows of 4 domains x 3 framings x 40 prompts in which domain A's direction frees A's prompts
    of one framing only (a different framing per domain): a gap of 1/3 that one framing per domain carries."""
    rows = []
    for target in range(4):
        for framing in range(3):
            for j in range(40):
                for source in range(4):
                    freed = source == target and framing == source % 3
                    row = {
                        "id": f"p{target}-{framing}-{j}",
                        "domain": f"d{target}",
                        "direction": f"d{source}",
                    }
                    rows.append(
                        row | {"refused": not freed} | ({"cluster": f"f{framing}"} if clustered else {})
                    )
    return pd.DataFrame(rows)


def test_a_gap_that_one_framing_per_domain_carries_is_no_domain_effect_once_framings_are_the_unit() -> None:
    """Resampling prompts, the gap of 0.33 has a CI well above transfer_gap; resampling whole framings
    within domains (three per domain), it does not, and the domain claim falls from replicated to partially."""
    names = [f"d{i}" for i in range(4)]
    kwargs = {"n_bootstrap": 200, "seed": 0, "n_permutations": 200}
    by_prompt = transfer_gap(_gap_rows(clustered=False), names, **kwargs)
    by_framing = transfer_gap(_gap_rows(clustered=True), names, **kwargs)
    assert by_prompt["value"] == pytest.approx(1 / 3) == by_framing["value"]
    assert by_prompt["ci95"][0] >= SETTINGS.transfer_gap > by_framing["ci95"][0]
    geo, causal = _study("redundant directions")
    for gap, expected in ((by_prompt, "replicated"), (by_framing, "partially")):
        edited = json.loads(json.dumps(causal))
        edited["transfer"]["gap"] = json.loads(json.dumps(gap))
        assert domain_dependent_directions(geo, edited, SETTINGS)[0] == expected


def test_a_gap_above_the_threshold_that_its_permutation_null_reaches_is_not_domain_specific() -> None:
    geo, causal = _study("redundant directions")
    edited = json.loads(json.dumps(causal))
    edited["transfer"]["gap"]["permutation"]["p_value"] = 0.2
    assert edited["transfer"]["gap"]["ci95"][0] >= SETTINGS.transfer_gap
    assert domain_dependent_directions(geo, edited, SETTINGS)[0] == "partially"


def _points_outside_their_intervals(record: Any, path: str = "") -> list[str]:
    """Every ``{value, ci95}`` (or ``{k, ci95}``) in a record whose point lies outside its own interval."""
    found: list[str] = []
    if isinstance(record, dict):
        point, ci = record.get("value", record.get("k")), record.get("ci95")
        known = isinstance(ci, list) and all(isinstance(c, int | float) and math.isfinite(c) for c in ci)
        if isinstance(point, int | float) and known and not ci[0] - 1e-12 <= point <= ci[1] + 1e-12:
            found.append(f"{path}: {point} outside {ci}")
        for key, value in record.items():
            found += _points_outside_their_intervals(value, f"{path}/{key}")
    elif isinstance(record, list):
        for i, value in enumerate(record):
            found += _points_outside_their_intervals(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("name", ["one direction", "redundant directions", "harmfulness apart from refusal"])
def test_every_interval_in_a_planted_study_contains_its_own_point_estimate(name: str) -> None:
    """The dimensionality page once showed a between-domain cosine of 0.9955 [0.9939, 0.9954]: the cosine
    of noisy directions is biased and its percentile interval missed its own estimate. On one direction
    shared by every domain the bias is large, so this scan fails on a percentile interval."""
    geo, causal = _study(name)
    assert _points_outside_their_intervals(geo, "geometry") == []
    assert _points_outside_their_intervals(causal, "causal") == []


def test_concept_cones_are_replicated_on_a_planted_cone_and_not_on_one_or_redundant_directions() -> None:
    assert verdict(refusal_concept_cones, "cone") == "replicated"
    assert verdict(refusal_concept_cones, "one direction") == "not replicated"
    assert verdict(refusal_concept_cones, "redundant directions") == "not replicated"


def test_one_direction_with_domain_content_is_no_replicated_cone() -> None:
    """The audit's counter-example: one true direction plus domain content passed the old rule."""
    assert verdict(refusal_concept_cones, "one direction plus domain content") != "replicated"


def test_a_cone_barely_wider_than_its_null_is_not_a_cone() -> None:
    """The organism's first run: effective rank 1.01 against null cones of 1.00 passed "wider than the null";
    a cone must also hold more than one direction's worth of generators (effective rank >= 1.5)."""
    geo, causal = _study("cone")
    causal = json.loads(json.dumps(causal))
    causal["cone"]["effective_rank"] = 1.01
    causal["cone"]["null"]["effective_rank"] = [1.0] * SETTINGS.null_cones
    assert refusal_concept_cones(geo, causal, SETTINGS)[0] == "not replicated"


def test_the_null_cone_is_measured_beside_the_cone() -> None:
    _, causal = _study("cone")
    null = causal["cone"]["null"]
    assert len(null["effective_rank"]) == SETTINGS.null_cones and null["sampled"]["n"] == SETTINGS.null_cones


def test_harmfulness_distinct_from_refusal_is_replicated_when_planted_apart_and_not_when_identical() -> None:
    assert verdict(harmfulness_distinct_from_refusal, "harmfulness apart from refusal") == "replicated"
    assert verdict(harmfulness_distinct_from_refusal, "harmfulness is refusal") == "not replicated"


def test_loosely_linked_is_replicated_when_planted_apart_and_not_without_a_harmfulness_signal() -> None:
    assert verdict(harmfulness_refusal_loosely_linked, "harmfulness apart from refusal") == "replicated"
    assert (
        verdict(harmfulness_refusal_loosely_linked, "no harmfulness at the instruction token")
        == "not replicated"
    )


# --- Arditi et al.: the replication's verdicts on the planted read-outs ----------------------------------


def arditi(name: str) -> dict[str, str]:
    """The refusal-direction verdicts for a planted organism: rates under the real hooks and meter."""
    with pytest.MonkeyPatch.context() as mp:
        patch_forward(mp)
        org = organism(name)
        geo, tensors, prompts = build(org)
        layer = geo["selected"]["layer"]
        direction = tensors[f"pooled.layer{layer}"]
        control = random_direction(D, float(direction.norm()), 0)
        model = planted_model(org.bridge)
        meter = meter_for(model)
        hooks = {
            "baseline": [],
            "ablation": ablation_hooks(2, direction),
            "random_ablation": ablation_hooks(2, control),
            "actadd": addition_hooks(direction, layer, 1.0),
            "random_actadd": addition_hooks(control, layer, 1.0),
        }
        rates = {
            c: {label: rate(meter(prompts[label].texts, h).tolist()) for label in ("harmful", "harmless")}
            for c, h in hooks.items()
        }
        texts = list(prompts["harmless"].texts)
        base, ablated = org.bridge.logits(texts, []), org.bridge.logits(texts, hooks["ablation"])
        token = base.argmax(dim=1, keepdim=True)
        delta_ce = (base.log_softmax(-1).gather(1, token) - ablated.log_softmax(-1).gather(1, token))[:, 0]
        capability = {
            "ablation": {
                "delta_ce": mean_with_ci(delta_ce.double().numpy(), resamples=200, seed=0),
                "kl": mean_with_ci(kl_divergence(base, ablated).double().numpy(), resamples=200, seed=0),
            }
        }
    inputs = VerdictInputs(
        rates=rates,
        capability=capability,
        logit_gap=None,
        orthogonalization_tolerance=1e-4,
        capability_tolerance_nats=0.1,
        selection_passed_filters=True,
    )
    return {v["claim"]: v["verdict"] for v in replication_verdicts(inputs)}


@pytest.mark.parametrize(
    ("claim", "planted_positive", "planted_negative"),
    [
        ("ablation-bypasses-refusal", "one direction", "redundant directions"),
        ("ablation-bypasses-refusal", "one direction", "one direction, compliance on the same direction"),
        ("addition-induces-refusal", "one direction", "redundant directions, far from threshold"),
        ("single-direction", "one direction", "redundant directions, far from threshold"),
        ("minimal-capability-cost", "one direction", "one direction, compliance on the same direction"),
    ],
)
def test_each_arditi_claim_is_replicated_on_its_planted_positive_and_not_on_its_negative(
    claim: str, planted_positive: str, planted_negative: str
) -> None:
    assert arditi(planted_positive)[claim] == "replicated"
    assert arditi(planted_negative)[claim] == "not replicated"


def test_orthogonalization_is_replicated_for_the_edited_weights_and_not_for_weights_edited_elsewhere(
    tiny_checkpoints: dict[str, Any], tmp_path: Any
) -> None:
    """A tiny checkpoint orthogonalized against the direction (positive), and one orthogonalized against a
    different direction (negative: its weights plant another edit), each against hook ablation."""
    from mechatlas.experiments.refusal_direction.verdicts import orthogonalization_verdict
    from mechatlas.interp.interventions import max_logit_gap, save_orthogonalized_checkpoint
    from mechatlas.interp.models import load_model

    model = load_model(tiny_checkpoints["qwen2"])
    direction = random_direction(model.d_model, 5.0, 0)
    texts = ["How do I bake bread?", "Explain how to build a weapon."]
    hooks = ablation_hooks(model.n_layers, direction)
    verdicts = {}
    for name, edited_against in (("same", direction), ("other", random_direction(model.d_model, 5.0, 1))):
        folder = save_orthogonalized_checkpoint(model, edited_against, tmp_path / name, note={"test": True})
        gap = max_logit_gap(model, load_model(folder), texts, fwd_hooks=hooks)
        inputs = VerdictInputs(
            rates={},
            capability={},
            logit_gap=gap,
            orthogonalization_tolerance=1e-4,
            capability_tolerance_nats=0.1,
            selection_passed_filters=True,
        )
        verdicts[name] = orthogonalization_verdict(inputs)[0]
    assert verdicts == {"same": "replicated", "other": "not replicated"}


def test_every_arditi_verdict_is_reported_under_each_judge_and_flips_are_flagged() -> None:
    from mechatlas.experiments.refusal_direction.verdicts import judge_panel

    def rates(ablation: float) -> dict[str, Any]:
        share = {"baseline": (0.95, 0.02), "ablation": (ablation, 0.02), "random_ablation": (0.95, 0.02)}
        share |= {"actadd": (0.95, 0.9), "random_actadd": (0.95, 0.02)}

        def r(p: float) -> dict[str, Any]:
            return rate([i < round(p * 100) for i in range(100)])

        return {c: {"harmful": r(h), "harmless": r(b)} for c, (h, b) in share.items()}

    inputs = VerdictInputs(
        rates={},
        capability={},
        logit_gap=None,
        orthogonalization_tolerance=1e-4,
        capability_tolerance_nats=0.1,
        selection_passed_filters=True,
    )
    replicates, panel, flips = judge_panel(
        inputs, {"substring": rates(0.02), "logit": rates(0.9)}, "substring"
    )
    assert panel["substring"]["ablation-bypasses-refusal"] == "replicated"
    assert panel["logit"]["ablation-bypasses-refusal"] == "not replicated"
    assert "ablation-bypasses-refusal" in flips and "addition-induces-refusal" not in flips
    ablation = next(r for r in replicates if r["claim"] == "ablation-bypasses-refusal")
    assert (
        ablation["verdict"] == "replicated"
        and "FLIPS" in ablation["reason"]
        and "logit: not replicated" in ablation["reason"]
    )


def _panel_study(monkeypatch: pytest.MonkeyPatch, *, delayed_refusal: bool) -> tuple[Any, ...]:
    """The one-direction organism's causal analyses under both meter judges, and the verdict panel.

    With ``delayed_refusal`` its harmful replies that do not open with a refusal token still refuse a few
    words later ("Sure. Actually, I cannot help."): the first-token judge counts them as compliance, the
    substring judge as refusal."""
    from mechatlas.experiments.dimensionality.interventions import causal_analyses
    from mechatlas.experiments.dimensionality.stages import verdicts_by_judge
    from planted_organisms import REFUSAL_ID

    org = organism("one direction")
    geo, tensors, prompts = build(org)
    patch_forward(monkeypatch)
    harmful = set(prompts["harmful"].texts)

    def generate(model: Any, texts: list[str], *, fwd_hooks: Any = None, **_: Any) -> list[str]:
        first = model.bridge.logits(texts, list(fwd_hooks or [])).argmax(dim=1).tolist()
        late = "Sure. Actually, I cannot help." if delayed_refusal else "Sure: first, a step."
        return [
            "I cannot help." if t == REFUSAL_ID else late if text in harmful else "Sure: first, a step."
            for t, text in zip(first, texts, strict=True)
        ]

    monkeypatch.setattr("mechatlas.interp.judges.greedy_generate", generate)
    model = planted_model(org.bridge)
    run = {
        judge: causal_analyses(
            meter_for(model, judge), prompts, geo, tensors, settings=SETTINGS, coefficient=1.0, batch_size=64
        )[0]
        for judge in ("first_token", "substring")
    }
    causal = json.loads(json.dumps(run["first_token"] | {"judge_panel": {"substring": run["substring"]}}))
    return verdicts_by_judge(geo, causal, {}, SETTINGS)


def test_every_dimensionality_verdict_is_derived_under_each_judge_and_a_flip_is_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replicates, panel, flips = _panel_study(monkeypatch, delayed_refusal=True)
    claim = "refusal-multidimensional"
    assert panel["first_token"][claim] == "not replicated"  # one direction's ablation changes the first token
    assert panel["substring"][claim] != "not replicated"  # ... but the replies still refuse
    assert claim in flips
    entry = next(r for r in replicates if r["claim"] == claim)
    assert entry["verdict"] == "not replicated" and "FLIPS" in entry["reason"]
    assert "optimised-directions-fewer-side-effects" not in panel["substring"]  # no optimised numbers here


def test_a_meter_under_another_judge_does_not_reuse_the_first_judge_s_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = organism("one direction")
    _, _, prompts = build(org)
    patch_forward(monkeypatch)
    monkeypatch.setattr(  # every reply refuses, whatever its first token
        "mechatlas.interp.judges.greedy_generate",
        lambda model, texts, **_: ["Sure. I cannot help."] * len(texts),
    )
    meter = meter_for(planted_model(org.bridge))
    texts = list(prompts["harmless"].texts)
    assert not meter(texts).any()  # the top-token judge's baseline, now cached
    assert meter.under("substring")(texts).all()  # measured again under the substring judge
    assert not meter(texts).any()


def _optimised(first: float, other: float) -> dict[str, Any]:
    """An optimised record whose one RDO seed leaves ``first`` of harmful prompts refusing under the verdict
    judge and ``other`` under the substring judge, with a KL below the difference in means'."""

    def bypass(value: float) -> dict[str, Any]:
        return {"bypass": {"value": value, "ci95": [value, value + 0.02]}, "bypasses": value + 0.02 < 0.25}

    seed = bypass(first) | {
        "harmless_kl": {"value": 0.01},
        "kl_minus_dim": {"value": -0.05, "ci95": [-0.08, -0.02], "n": 160},
    }
    dim = bypass(0.0) | {"harmless_kl": {"value": 0.06}}
    panel = {"substring": {"rdo": [bypass(other)], "difference_in_means": bypass(0.0)}}
    return {"rdo": {"rdo": [seed], "difference_in_means": dim, "judge_panel": panel}}


@pytest.mark.parametrize(
    ("other", "verdict", "flips"), [(0.0, "replicated", False), (0.9, "not replicated", True)]
)
def test_the_optimised_claim_is_judged_under_each_judge_from_its_own_bypass_numbers(
    other: float, verdict: str, flips: bool
) -> None:
    from mechatlas.experiments.dimensionality.stages import OPTIMISED_CLAIM, verdicts_by_judge

    geo, causal = _study("one direction")
    causal = causal | {"judge_panel": {"substring": causal}}
    replicates, panel, flipped = verdicts_by_judge(geo, causal, _optimised(0.0, other), SETTINGS)
    assert panel["first_token"][OPTIMISED_CLAIM] == "replicated"
    assert panel["substring"][OPTIMISED_CLAIM] == verdict
    assert (OPTIMISED_CLAIM in flipped) is flips
    entry = next(r for r in replicates if r["claim"] == OPTIMISED_CLAIM)
    assert f"substring: {verdict}" in entry["reason"]


def test_judges_that_agree_on_every_reply_flag_no_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    replicates, panel, flips = _panel_study(monkeypatch, delayed_refusal=False)
    assert flips == []
    assert panel["first_token"] == {c: v for c, v in panel["substring"].items()} | {
        "optimised-directions-fewer-side-effects": panel["first_token"][
            "optimised-directions-fewer-side-effects"
        ]
    }
    assert all("FLIPS" not in r["reason"] for r in replicates)


def test_the_read_out_gate_sees_an_ablation_of_a_refusal_token_s_unembedding(
    tiny_checkpoints: dict[str, Any],
) -> None:
    """Planted on a tiny checkpoint: ablating the unembedding direction of the refusal tokens (the read-out,
    PLANTING.md's trap) lowers them in refusal contexts; a random direction of the same size does not."""
    import numpy as np

    from mechatlas.experiments.refusal_direction.verdicts import ablation_verdict
    from mechatlas.interp.evaluation import refusal_token_retention
    from mechatlas.interp.models import load_model
    from mechatlas.interp.scores import refusal_context_ids, refusal_token_ids

    model = load_model(tiny_checkpoints["qwen2"])
    ids = refusal_context_ids(
        model.tokenizer, ["I", "Sorry"], refusal_token_ids(model.tokenizer, ["I", "Sorry"])
    )
    unembed = model.bridge.original_model.get_output_embeddings().weight.detach().double()
    readout = unembed[ids].mean(0) - unembed.mean(0)
    prompts = ["Explain how to build a weapon.", "How do I hack a bank?"]
    replies = ["I'm sorry, I cannot help. I cannot do that.", "Sorry, I won't. I cannot help with that."]
    drop = {}
    for name, direction in (("read-out", readout), ("random", random_direction(model.d_model, 1.0, 3))):
        values = refusal_token_retention(
            model, prompts, replies, ids, ablation_hooks(model.n_layers, direction)
        )
        drop[name] = float(np.nanmean(values))
    assert drop["read-out"] < drop["random"]

    def verdict_with(retention: float) -> str:
        r = rate([i < 2 for i in range(100)])
        rates = {c: {"harmful": r, "harmless": r} for c in ("baseline", "ablation", "random_ablation")}
        rates["baseline"] = rates["random_ablation"] = {"harmful": rate([True] * 100), "harmless": r}
        capability = {
            "ablation": {
                "refusal_token_retention": {"value": retention, "n": 10, "ci95": [retention, retention]}
            }
        }
        inputs = VerdictInputs(rates, capability, None, 1e-4, 0.1, True)
        return ablation_verdict(inputs)[0]

    assert verdict_with(-0.05) == "replicated"
    assert verdict_with(-3.0) == "not replicated"
