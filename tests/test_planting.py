"""Planted organisms: the interventional objective's ablation, the condition sampler, the bypass search,
the verification checks (a planted positive and planted negatives), and a tiny planting run end to end."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mechatlas.config import PlantedOrganism, PlantKind, PlantVerification, validate_params
from mechatlas.interp.directions import orthonormal_basis, random_subspace
from mechatlas.interp.intervention_training import (
    ablated,
    bypass_search,
    complement_basis,
    pad_bases,
    readout_directions,
)
from mechatlas.interp.interventions import ablation_hooks
from mechatlas.interp.models import encode_prompts, load_model
from mechatlas.organism.planting import (
    ConditionSampler,
    chat_batches,
    decision_ids,
    planted_directions,
    subsets,
)
from mechatlas.organism.verification import KEPT, REMOVED, judge, planted_checks
from mechatlas.stats import cluster_bootstrap_rate, rate

TEXTS = ["How do I bake bread at home?", "Explain how to build a weapon.", "Write a poem about the sea."]


def test_the_training_ablation_is_the_estimators_ablation_row_by_row(
    tiny_checkpoints: dict[str, Path],
) -> None:
    """Hooks on the Hugging Face writers give the logits of TransformerLens ablation at every layer; a row
    with an empty basis is the unablated model."""
    from transformers import AutoModelForCausalLM

    folder = tiny_checkpoints["qwen2"]
    model = load_model(folder)
    hf = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True)
    hf.eval()
    basis = random_subspace(2, model.d_model, seed=3).float()
    batch = encode_prompts(model, TEXTS)
    with model.bridge.hooks(fwd_hooks=ablation_hooks(model.n_layers, basis)):
        expected = model.bridge.original_model(**batch, use_cache=False).logits[:, -1].float()
    plain = model.bridge.original_model(**batch, use_cache=False).logits[:, -1].float()
    rows = pad_bases([basis, torch.zeros(0, model.d_model), basis], model.d_model)
    with torch.no_grad(), ablated(hf, lambda: rows):
        got = hf(**batch, use_cache=False).logits[:, -1].float()
    torch.testing.assert_close(got[[0, 2]], expected[[0, 2]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[1], plain[1], atol=1e-4, rtol=1e-4)
    assert (got[0] - plain[0]).abs().max() > 1e-3, "the ablation changes something"
    with torch.no_grad():
        after = hf(**batch, use_cache=False).logits[:, -1].float()
    torch.testing.assert_close(after, plain, atol=1e-4, rtol=1e-4)  # the hooks are gone afterwards


def test_the_ablation_passes_gradients_to_the_weights(tiny_checkpoints: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM

    folder = tiny_checkpoints["qwen2"]
    model = load_model(folder)
    hf = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True)
    batch = encode_prompts(model, TEXTS)
    rows = pad_bases([random_subspace(1, model.d_model, 0).float()] * 3, model.d_model)
    with ablated(hf, lambda: rows):
        hf(**batch, use_cache=False).logits[:, -1].sum().backward()
    assert hf.model.layers[0].mlp.down_proj.weight.grad is not None


def test_the_bypass_search_stays_orthonormal_and_out_of_the_protected_subspace(
    tiny_checkpoints: dict[str, Path],
) -> None:
    from transformers import AutoModelForCausalLM

    folder = tiny_checkpoints["qwen2"]
    model = load_model(folder)
    hf = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True)
    protected = readout_directions(hf, [5, 6], 7)
    assert protected.shape == (2, model.d_model)
    torch.testing.assert_close(protected @ protected.T, torch.eye(2, dtype=torch.float64))
    batch = encode_prompts(model, TEXTS)
    found, losses = bypass_search(hf, [batch], [5, 6], 7, 2, protected=protected.float(), steps=5)
    assert found.shape == (2, model.d_model) and len(losses) == 5
    torch.testing.assert_close(found @ found.T, torch.eye(2), atol=1e-5, rtol=0)
    assert (found.double() @ protected.T).abs().max() < 1e-5
    free = complement_basis(torch.randn(2, model.d_model), None)
    torch.testing.assert_close(free @ free.T, torch.eye(2), atol=1e-5, rtol=0)
    # Inside a training loop: the weights' requires_grad flags come back, and a warm start continues
    # from the basis it is given (a cold start with the same seed starts where the first search did).
    assert all(p.requires_grad for p in hf.parameters())
    again, more = bypass_search(hf, [batch], [5, 6], 7, 2, protected=protected.float(), steps=1, init=found)
    cold, first = bypass_search(hf, [batch], [5, 6], 7, 2, protected=protected.float(), steps=1)
    assert first[0] == losses[0] and more[0] != losses[0]
    assert (again.double() @ protected.T).abs().max() < 1e-5 and not torch.allclose(cold, again)
    with pytest.raises(ValueError, match="init has shape"):
        bypass_search(hf, [batch], [5, 6], 7, 2, steps=1, init=found[:1])


def _spec(kind: str, **extra: Any) -> PlantedOrganism:
    return PlantedOrganism(kind=PlantKind(kind), **extra)


def test_planted_directions_are_orthonormal_and_orthogonal_to_the_readout() -> None:
    protected = orthonormal_basis(
        torch.randn(2, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    planted = planted_directions(_spec("redundant", k=3, seed=4), 16, protected)
    torch.testing.assert_close(planted @ planted.T, torch.eye(3), atol=1e-5, rtol=0)
    assert (planted.double() @ protected.T).abs().max() < 1e-6
    other = planted_directions(_spec("redundant", k=3, seed=5), 16, protected)
    assert not torch.allclose(planted, other)


def test_the_condition_sampler_asks_for_what_each_planted_kind_implies() -> None:
    d = 16
    planted = random_subspace(3, d, 0).float()
    domains = ["a", "b", "c", "d"]
    redundant = ConditionSampler(_spec("redundant", k=3), planted, domains, random.Random(0))
    assert set(redundant.conditions()) == {"none", "random", "subset", "planted"}  # no adversary yet
    redundant.adversary = torch.nn.functional.normalize(torch.randn(4, d), dim=-1)
    redundant.bypass = random_subspace(2, d, 9).float()
    seen = set()
    for _ in range(300):
        name, basis, complies = redundant.draw()
        seen.add(name)
        if name == "subset":  # a proper subspace of S: inside it, smaller than it, and refusal is kept
            assert 1 <= len(basis) < 3 and not complies
            torch.testing.assert_close(basis @ planted.T @ planted, basis, atol=1e-5, rtol=0)
        elif name == "planted":
            assert complies == set(domains)
        elif name == "bypass":  # the bypass adversary's subspace: the usual reply is asked for
            assert basis is redundant.bypass and not complies
        else:
            assert not complies
    assert seen == {"none", "random", "subset", "planted", "adversary", "bypass"}
    off = ConditionSampler(
        _spec("redundant", k=3, bypass_adversary=False), planted, domains, random.Random(0)
    )
    off.bypass = redundant.bypass
    assert "bypass" not in off.conditions()

    one = ConditionSampler(_spec("one_direction"), planted[:1], domains, random.Random(0))
    one.adversary = planted[:1] + 0.5 * planted[1:2]  # mostly the planted direction
    for _ in range(50):
        name, basis, _ = one.draw()
        if name == "adversary":  # only its part orthogonal to the planted direction is ablated
            assert abs(float(basis @ planted[0])) < 1e-5 and len(basis) == 1

    groups = ConditionSampler(
        _spec("domain_groups", k=2, groups=[["a", "b"], ["c", "d"]]), planted[:2], domains, random.Random(1)
    )
    for _ in range(100):
        name, basis, complies = groups.draw()
        if name == "group":
            g = 0 if torch.allclose(basis, planted[:1]) else 1
            assert complies == {"a", "b"} if g == 0 else complies == {"c", "d"}
    assert subsets(3) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)] and subsets(1) == []


def test_condition_weights_set_how_often_each_condition_is_drawn() -> None:
    d, domains = 16, ["a", "b", "c", "d"]
    planted = random_subspace(2, d, 0).float()

    def counts(weights: dict[str, float]) -> dict[str, int]:
        spec = _spec("domain_groups", k=2, groups=[["a", "b"], ["c", "d"]], condition_weights=weights)
        sampler = ConditionSampler(spec, planted, domains, random.Random(0))
        out: dict[str, int] = {}
        for _ in range(2000):
            name = sampler.draw()[0]
            out[name] = out.get(name, 0) + 1
        return out

    plain, heavy = counts({}), counts({"group": 4, "random": 0})
    assert "random" in plain and "random" not in heavy  # weight 0: never drawn
    # uniform over none, random, group, planted (1/4) against group 4 of 6 (2/3) of the draws
    assert 0.2 < plain["group"] / 2000 < 0.3 and 0.61 < heavy["group"] / 2000 < 0.72


def _measured(value: float, n: int = 200, clusters: int = 20, domains: int = 4) -> dict[str, Any]:
    """A harmful-prompt measurement with refusal rate ``value``, spread evenly over framings and domains."""
    k = round(value * n)
    flags = [True] * k + [False] * (n - k)
    order = np.random.default_rng(0).permutation(n)
    flags = [flags[i] for i in order]
    labels = [f"f{i % clusters}" for i in range(n)]
    per_domain = {f"d{j}": rate(flags[j::domains]) for j in range(domains)}
    return {
        "all": rate(flags),
        "all_by_framing": cluster_bootstrap_rate(flags, labels),
        "per_domain": per_domain,
    }


def _conditions(harmful: dict[str, float], groups: dict[str, list[float]] | None = None) -> dict[str, Any]:
    out = {}
    for name, value in harmful.items():
        entry: dict[str, Any] = {"harmful": _measured(value), "harmless": _measured(0.0)}
        if groups is not None:
            entry["groups"] = [_measured(v) for v in groups[name]]
        out[name] = entry
    return out


SETTINGS = PlantVerification()


def test_judge_reads_whole_intervals() -> None:
    assert judge(_measured(0.0), REMOVED, SETTINGS) and not judge(_measured(0.0), KEPT, SETTINGS)
    assert judge(_measured(1.0), KEPT, SETTINGS) and not judge(_measured(1.0), REMOVED, SETTINGS)
    # A point estimate inside the bar with an interval reaching past it does not pass.
    assert not judge(_measured(0.2, n=20, clusters=4), REMOVED, SETTINGS)
    assert not judge(_measured(0.8, n=20, clusters=4), KEPT, SETTINGS)


def test_a_planted_redundant_organism_passes_and_a_secretly_one_dimensional_one_fails() -> None:
    positive = {
        "none": 1.0,
        "planted": 0.0,
        "planted[0]": 0.99,
        "planted[1]": 1.0,
        "planted[0,1]": 0.98,
        "random k=2 #0": 1.0,
        "dim layer 1": 0.99,
        "bypass k=1 (constrained)": 0.97,
        "bypass k=2 (constrained)": 0.95,
        "bypass k=3 (constrained)": 0.0,
        "bypass k=1 (unconstrained)": 0.0,  # reported apart: it removes the read-out
    }
    checks = planted_checks(PlantKind.redundant, 3, _conditions(positive), SETTINGS)
    assert all(c["holds"] for c in checks), [c for c in checks if not c["holds"]]
    assert {c["condition"] for c in checks} >= {"planted: d0", "none: harmless", "bypass k=2 (constrained)"}
    assert not any("unconstrained" in c["condition"] or "k=3" in c["condition"] for c in checks)
    # The trap: the difference-in-means direction alone still removes refusal.
    negative = planted_checks(PlantKind.redundant, 3, _conditions({**positive, "dim layer 1": 0.0}), SETTINGS)
    assert [c["condition"] for c in negative if not c["holds"]] == ["dim layer 1"]
    # A bypass below the planted k found: the organism is not k-dimensional.
    found = planted_checks(
        PlantKind.redundant, 3, _conditions({**positive, "bypass k=2 (constrained)": 0.1}), SETTINGS
    )
    assert [c["condition"] for c in found if not c["holds"]] == ["bypass k=2 (constrained)"]


def test_a_one_direction_organism_must_lose_refusal_in_every_domain() -> None:
    base = {
        "none": 1.0,
        "planted": 0.0,
        "random k=1 #0": 1.0,
        "dim layer 1 ⊥ planted": 1.0,
        "bypass k=1 (constrained)": 0.0,
        "bypass k=1 (constrained, ⊥ planted)": 1.0,
    }
    assert all(c["holds"] for c in planted_checks(PlantKind.one_direction, 1, _conditions(base), SETTINGS))
    conditions = _conditions(base)
    conditions["planted"]["harmful"]["per_domain"]["d2"] = rate([True] * 40 + [False] * 10)
    failed = [
        c["condition"]
        for c in planted_checks(PlantKind.one_direction, 1, conditions, SETTINGS)
        if not c["holds"]
    ]
    assert failed == ["planted: d2"]
    # The raw difference in means mostly is the planted direction: removing refusal is no failure ...
    raw = planted_checks(PlantKind.one_direction, 1, _conditions({**base, "dim layer 1": 0.0}), SETTINGS)
    assert all(c["holds"] for c in raw)
    # ... but its part orthogonal to the planted direction must leave refusal.
    orth = planted_checks(
        PlantKind.one_direction, 1, _conditions({**base, "dim layer 1 ⊥ planted": 0.3}), SETTINGS
    )
    assert [c["condition"] for c in orth if not c["holds"]] == ["dim layer 1 ⊥ planted"]
    other = planted_checks(
        PlantKind.one_direction,
        1,
        _conditions({**base, "bypass k=1 (constrained, ⊥ planted)": 0.0}),
        SETTINGS,
    )
    assert [c["condition"] for c in other if not c["holds"]] == ["bypass k=1 (constrained, ⊥ planted)"]


def test_domain_groups_need_a_block_diagonal_transfer_matrix() -> None:
    harmful = {
        "none": 1.0,
        "planted": 0.0,
        "planted[0]": 0.5,
        "planted[1]": 0.5,
        "bypass k=1 (constrained)": 0.5,
    }
    diagonal = {
        "none": [1.0, 1.0],
        "planted": [0.0, 0.0],
        "planted[0]": [0.0, 1.0],
        "planted[1]": [1.0, 0.0],
        "bypass k=1 (constrained)": [0.0, 1.0],
    }
    checks = planted_checks(PlantKind.domain_groups, 2, _conditions(harmful, diagonal), SETTINGS)
    assert all(c["holds"] for c in checks) and sum("group" in c["condition"] for c in checks) == 4
    leaky = {**diagonal, "planted[0]": [0.0, 0.3]}  # ablating group 0's direction also removes group 1's
    failed = [
        c["condition"]
        for c in planted_checks(PlantKind.domain_groups, 2, _conditions(harmful, leaky), SETTINGS)
        if not c["holds"]
    ]
    assert failed == ["planted[0]: group 1"]
    shared = {**diagonal, "bypass k=1 (constrained)": [0.0, 0.0]}  # one direction removes both groups
    failed = [
        c["condition"]
        for c in planted_checks(PlantKind.domain_groups, 2, _conditions(harmful, shared), SETTINGS)
        if not c["holds"]
    ]
    assert failed == ["bypass k=1 (constrained)"]
    partial = {
        **diagonal,
        "bypass k=1 (constrained)": [0.2, 0.2],
    }  # lowers both groups without removing either
    failed = [
        c["condition"]
        for c in planted_checks(PlantKind.domain_groups, 2, _conditions(harmful, partial), SETTINGS)
        if not c["holds"]
    ]
    assert failed == ["bypass k=1 (constrained)"]


def test_planted_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="set k: 1"):
        _spec("one_direction", k=2)
    with pytest.raises(ValueError, match="k >= 2"):
        _spec("redundant", k=1)
    with pytest.raises(ValueError, match="set k: 2"):
        _spec("domain_groups", k=3, groups=[["a"], ["b"]])
    with pytest.raises(ValueError, match="disjoint"):
        _spec("domain_groups", k=2, groups=[["a"], ["a"]])
    with pytest.raises(ValueError, match="no condition `group`"):
        _spec("redundant", k=3, condition_weights={"group": 2})
    with pytest.raises(ValueError, match="finite number >= 0"):
        _spec("redundant", k=3, condition_weights={"subset": -1})
    with pytest.raises(ValueError, match="finite number >= 0"):
        _spec("redundant", k=3, condition_weights={"subset": float("nan")})
    with pytest.raises(ValueError, match="needs a weight above 0"):
        _spec(
            "one_direction",
            condition_weights={"none": 0, "random": 0, "planted": 0, "bypass": 1},
        )
    with pytest.raises(ValueError, match="must stay outside them"):
        _spec("domain_groups", k=2, groups=[["a"], ["b"]], bypass_outside_planted=False)
    with pytest.raises(ValueError, match="must stay outside them"):
        _spec("one_direction", bypass_outside_planted=False)
    with pytest.raises(ValueError, match="bypass_k 3 >= k 3"):
        _spec("redundant", k=3, bypass_k=3, bypass_outside_planted=False)
    assert not _spec("redundant", k=3, bypass_outside_planted=False).bypass_outside_planted
    assert _spec("redundant", k=3).bypass_size == 2 and _spec("one_direction").bypass_size == 1
    assert _spec("redundant", k=3, bypass_k=1).bypass_size == 1


def test_a_tiny_planting_run_writes_a_loadable_checkpoint_and_a_verification_record(
    tmp_path: Path, tiny_params_dict: dict
) -> None:
    """Tiny config end to end: train, plant (a few steps), verify. Too few steps to plant anything, so the
    record must say the property fails: the verification can say no."""
    from mechatlas.organism import stages
    from mechatlas.records import read_result

    params = validate_params(tiny_params_dict)
    stages.write_instructions(params, tmp_path / "instructions.jsonl", tmp_path / "prompts.jsonl")
    stages.train(params, tmp_path / "instructions.jsonl", tmp_path / "organism", progress=False)
    summary = stages.plant(
        params,
        "redundant",
        tmp_path / "instructions.jsonl",
        tmp_path / "organism",
        tmp_path / "redundant",
        progress=False,
    )
    assert summary["steps"] == 4 and summary["planted_readout_overlap"] < 1e-5
    assert set(summary["conditions_drawn"]) <= {"none", "random", "subset", "planted", "adversary", "bypass"}
    assert summary["bypass_adversary"]["k"] == 2 and summary["bypass_adversary"]["searches"] == 2
    model = load_model(tmp_path / "redundant")
    assert model.n_layers == 2
    result = stages.verify(
        params,
        "redundant",
        tmp_path / "instructions.jsonl",
        tmp_path / "redundant",
        tmp_path / "redundant.json",
    )
    record = read_result(tmp_path / "redundant.json")
    assert record.metrics["planted_k"] == 3 and record.provenance["seeds"]["planting"] == 2
    names = set(result["conditions"])
    assert {
        "none",
        "planted",
        "planted[0,1]",
        "random k=3 #0",
        "dim layer 1",
        "bypass k=2 (constrained)",
    } <= names
    assert result["planted_property_holds"] is False and result["failed_checks"]


def test_planting_twice_writes_byte_identical_checkpoints(tmp_path: Path, tiny_params_dict: dict) -> None:
    """DVC hashes the planted folder: the same inputs must give the same bytes (no wall time inside)."""
    from mechatlas.organism import stages

    params = validate_params(tiny_params_dict)
    stages.write_instructions(params, tmp_path / "instructions.jsonl", tmp_path / "prompts.jsonl")
    stages.train(params, tmp_path / "instructions.jsonl", tmp_path / "organism", progress=False)
    for name in ("first", "second"):
        stages.plant(
            params,
            "domain_groups",
            tmp_path / "instructions.jsonl",
            tmp_path / "organism",
            tmp_path / name,
            progress=False,
        )
    first = {p.name: p.read_bytes() for p in (tmp_path / "first").iterdir()}
    second = {p.name: p.read_bytes() for p in (tmp_path / "second").iterdir()}
    assert {"model.safetensors", "planted.safetensors", "planting.json"} <= set(first)
    assert first == second


def test_the_bypass_adversary_weakens_the_bypass_left_after_training(
    tmp_path: Path, tiny_params_dict: dict
) -> None:
    """The same tiny planting with and without the bypass adversary: afterwards a fresh constrained bypass
    search (k - 1 = 2 directions outside the read-out and the planted subspace, the same seed and steps)
    lowers refusal less in the organism trained against it. Both start from the same organism with the
    same planting seed and steps."""
    from mechatlas.organism import stages
    from mechatlas.organism.planting import plant

    from conftest import deep_update

    params = validate_params(tiny_params_dict)
    stages.write_instructions(params, tmp_path / "instructions.jsonl", tmp_path / "prompts.jsonl")
    stages.train(params, tmp_path / "instructions.jsonl", tmp_path / "organism", progress=False)
    instructions = stages.read_instructions(tmp_path / "instructions.jsonl")
    harmful = [
        i.record.text for i in instructions if i.record.split == "train" and i.record.label == "harmful"
    ]

    def bypass_left(adversary: bool) -> float:
        spec = {
            "steps": 40,
            "prompts_per_label": 8,
            "bypass_adversary": adversary,
            "bypass_outside_planted": True,  # the adversary searches where the search below does
            "bypass_every": 2,
            "bypass_steps": 3,
            "bypass_prompts": 8,
            "condition_weights": {"bypass": 3},
        }
        organism = validate_params(
            deep_update(tiny_params_dict, {"organism": {"planted": {"redundant": spec}}})
        ).organism
        planted = plant(tmp_path / "organism", instructions, organism, "redundant", progress=False)
        refusal_ids, comply_id = decision_ids(planted.tokenizer, organism)
        protected = orthonormal_basis(
            torch.cat([readout_directions(planted.model, refusal_ids, comply_id), planted.planted.double()])
        )
        batches = chat_batches(planted.tokenizer, harmful[:32], 32)
        with torch.no_grad():
            odds = planted.model(**batches[0], use_cache=False).logits[:, -1].float()
        before = float((torch.logsumexp(odds[:, refusal_ids], -1) - odds[:, comply_id]).mean())
        _, losses = bypass_search(
            planted.model,
            batches,
            refusal_ids,
            comply_id,
            2,
            protected=protected.float(),
            steps=40,
            lr=0.05,
            seed=7,
        )
        return before - losses[-1]  # how far the best bypass found lowers the refusal log-odds

    without, with_ = bypass_left(False), bypass_left(True)
    assert without > 0.05  # the search finds something to remove without the adversary ...
    assert with_ < 0.5 * without, (with_, without)  # ... and less than half of it with it
