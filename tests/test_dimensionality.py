"""The dimensionality stage's plumbing and verdict rules (mechatlas.experiments.dimensionality).

The geometry stage is run on a fake refusal-stage output folder with planted activations (no model), so
the reading of the shared file formats, the degenerate first layer and ``positions: all`` are checked in
seconds. The verdict rules are checked on hand-made numbers: a verdict must follow from the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from mechatlas.config import DimensionalitySettings, validate_params
from mechatlas.experiments.dimensionality.groups import prompt_groups
from mechatlas.experiments.dimensionality.resampling import GroupClusters
from mechatlas.experiments.dimensionality.stages import geometry_stage
from mechatlas.experiments.dimensionality.verdicts import (
    CLAIM_RULES,
    MIN_BASELINE_REFUSAL,
    VERDICT_RULES,
    dimensionality_verdicts,
    refusal_concept_cones,
    refusal_multidimensional,
    rule_text,
)
from mechatlas.interp.geometry import planted as geometry
from mechatlas.stats import rate

D_MODEL, LAYERS, POSITIONS = 16, 3, (-2, -1)


@pytest.fixture
def saved(tmp_path: Path) -> dict[str, Path]:
    """A refusal-stage output folder: layer 0 is one template embedding, layers 1-2 carry a planted difference."""
    act_dir, refusal_dir = tmp_path / "activations", tmp_path / "refusal"
    act_dir.mkdir()
    refusal_dir.mkdir()
    rng = np.random.default_rng(0)
    domains = ["cyber"] * 12 + ["drugs"] * 12 + ["fraud"] * 12
    rows = []
    for label, split, group_domains in (
        ("harmful", "train", domains[::2]),
        ("harmful", "val", domains[1::2]),
        ("harmless", "train", ["cooking"] * 16 + ["alarming"] * 4),
        ("harmless", "val", ["music"] * 12 + ["alarming"] * 4),
    ):
        n = len(group_domains)
        planted = geometry.planted_activations(
            2, d_model=D_MODEL, n_per_class=n, n_nuisance=2, seed=len(rows)
        )
        acts = (planted.harmful if label == "harmful" else planted.harmless).numpy()
        array = np.zeros((n, len(POSITIONS), LAYERS, D_MODEL), dtype=np.float32)
        array[:, :, 0] = 1.0  # the same embedding for every prompt
        array[:, :, 1:] = acts[:, None, None, :] + 0.1 * rng.standard_normal(
            (n, len(POSITIONS), LAYERS - 1, D_MODEL)
        )
        np.save(act_dir / f"{label}_{split}.npy", array)
        for i, domain in enumerate(group_domains):
            score = 3.0 if label == "harmful" else (2.0 if domain == "alarming" and i % 2 else -3.0)
            rows.append(
                {
                    "id": f"{label}-{split}-{i}",
                    "label": label,
                    "split": split,
                    "domain": domain,
                    "source": "organism",
                    "text": f"{label} {i}",
                    "row": i,
                    "refusal_score": score,
                    "kept": (score > 0) == (label == "harmful"),
                }
            )
    pd.DataFrame(rows).to_parquet(act_dir / "index.parquet")
    meta = {
        "positions": list(POSITIONS),
        "position_tokens": ["a", "b"],
        "layers": list(range(LAYERS)),
        "d_model": D_MODEL,
    }
    from mechatlas.io import file_digests

    files = [
        p.name for p in act_dir.iterdir()
    ]  # the arrays and index written above, as write_store records them
    (act_dir / "meta.json").write_text(json.dumps({**meta, "sha256": file_digests(act_dir, files)}))
    from safetensors.torch import save_file

    save_file(
        {"direction": torch.ones(D_MODEL, dtype=torch.float64)}, str(refusal_dir / "direction.safetensors")
    )
    selection = {"position": -1, "position_index": 1, "layer": 2}
    selection["sha256"] = file_digests(refusal_dir, ["direction.safetensors"])
    (refusal_dir / "direction.json").write_text(json.dumps(selection))
    instruction = np.load(act_dir / "harmful_train.npy")[:1, 0].repeat(len(rows), axis=0)  # placeholder shape
    instruction = instruction + rng.standard_normal(instruction.shape).astype(np.float32)
    np.save(tmp_path / "instruction_token.npy", instruction)
    return {
        "act": act_dir,
        "refusal": refusal_dir,
        "instruction": tmp_path / "instruction_token.npy",
        "out": tmp_path / "out",
    }


def _framings(params: Any, name: str, groups: Any) -> GroupClusters:
    """Stand-in for the prompt set's framings of the fake prompts: three framings, shared by every group."""
    return GroupClusters(
        {
            label: [f"framing-{i % 3}" for i in range(len(getattr(groups, label)))]
            for label in ("harmful", "harmless", "alarming")
        },
        "organism framing",
    )


def test_the_geometry_stage_reads_the_refusal_stage_outputs_at_every_position(
    saved: dict[str, Path], tiny_params_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = validate_params(
        tiny_params_dict | {"dimensionality": {**tiny_params_dict["dimensionality"], "positions": "all"}}
    )
    monkeypatch.setattr("mechatlas.experiments.dimensionality.stages._fit_clusters", _framings)
    result = geometry_stage(
        params, "organism", saved["act"], saved["refusal"], saved["instruction"], saved["out"]
    )
    table = pd.DataFrame(result["dimensionality"])
    assert set(table["position"]) == set(POSITIONS) and len(table) == 2 * LAYERS * len(POSITIONS)
    assert table[table["layer"] == 0]["degenerate"].all(), "layer 0 holds one template embedding"
    spectral = table[(table["layer"] > 0) & (table["estimator"] == "spectral")]
    assert (spectral["k"] >= 1).all()
    assert result["n"] == {"harmful": 36, "harmless": 28, "alarming": 8, "splits": ["train", "val"]}
    assert result["domains"]["0"] == {"degenerate": True}
    assert result["domains"]["2"]["domains"] == ["cyber", "drugs", "fraud"]
    assert np.allclose(np.diag(result["domains"]["2"]["cosine"]), 1.0)
    between = result["domains"]["2"]["mean_off_diagonal_cosine"]
    assert (
        between["interval_unit"].startswith("cluster")
        and between["ci95"][0] <= between["value"] <= between["ci95"][1]
    )
    versus = result["harmfulness_vs_refusal"]["2"]
    for stat in (
        versus["cosine"],
        versus["alarming_position_difference"],
        versus["instruction"]["harmful_vs_harmless_auc"],
        versus["post_instruction"]["alarming_relative_position"],
        versus["post_instruction"]["projection"]["alarming"],
    ):
        assert stat["interval_unit"].startswith("cluster (organism framing)"), stat
    null = result["domains"]["2"]["between_domain_null"]
    assert null["n_permutations"] == params.dimensionality.n_permutations and null["share_relabelled"] > 0
    from safetensors.torch import load_file

    tensors = load_file(str(saved["out"] / "subspaces.safetensors"))
    assert tensors["spectral.layer2"].shape[1] == D_MODEL and tensors["domain.layer2"].shape == (3, D_MODEL)
    assert {"pooled.layer1", "instruction.layer2", "post_instruction.layer2"} <= set(tensors)
    assert json.loads((saved["out"] / "geometry.json").read_text())["selected"]["layer"] == 2


def test_too_few_kept_prompts_fall_back_to_all_of_them() -> None:
    index = pd.DataFrame(
        {
            "label": ["harmful"] * 6 + ["harmless"] * 10,
            "split": "train",
            "domain": ["d"] * 6 + ["h"] * 8 + ["alarming"] * 2,
            "kept": [True, False, False, False, False, False] + [True] * 10,
            "source": "organism",
        }
    )
    groups = prompt_groups(index)
    assert groups.kept_filter == {"harmful": False, "harmless": True}
    assert (len(groups.harmful), len(groups.harmless), len(groups.alarming)) == (6, 8, 2)


def test_xstest_safe_prompts_stay_out_of_the_harmless_class_even_when_the_kept_filter_is_dropped() -> None:
    index = pd.DataFrame(
        {
            "label": ["harmful"] * 8 + ["harmless"] * 8,
            "split": "train",
            "domain": ["d"] * 8 + ["h"] * 4 + ["safe_contexts"] * 4,
            "kept": [True] * 8 + [False] * 8,  # too few kept harmless prompts: the filter is dropped
            "source": ["organism"] * 12 + ["xstest"] * 4,
        }
    )
    groups = prompt_groups(index)
    assert groups.kept_filter["harmless"] is False
    assert len(groups.harmless) == 4 and set(groups.harmless["source"]) == {"organism"}


# --- verdicts follow from the numbers ------------------------------------------------------------------


def flags(value: float, n: int = 100) -> dict[str, Any]:
    return rate([i < round(value * n) for i in range(n)])


def numbers(
    *, k1: float, found: int | None, random_at_k: float, kl: float = 0.01
) -> tuple[dict[str, Any], dict[str, Any]]:
    geo = {
        "selected": {"layer": 1, "position": -1},
        "layers": [0, 1],
        "domains": {"1": {}},
        "dimensionality": [],
    }
    curve = {"1": flags(k1), **({str(found): flags(0.1)} if found else {})}
    causal = {
        "baseline": {"harmful": flags(0.95)},
        "difference_in_means_ablation": flags(k1),
        "sweeps": {
            "1": {
                "spectral": {
                    "k": found,
                    "crossed": found is not None,
                    "curve": curve,
                    "max_k_evaluated": found or 8,
                },
                "random": {
                    "curve": {"1": flags(0.95), **({str(found): flags(random_at_k)} if found else {})}
                },
                "controls": {
                    name: {"curve": {"1": flags(0.95), **({str(found): flags(0.9)} if found else {})}}
                    for name in ("label_permuted", "harmless_pcs")
                },
                "harmless_kl": {"k": found or 8, "spectral": kl, "random": 0.0},
            }
        },
    }
    return geo, causal


@pytest.mark.parametrize(
    ("k1", "found", "random_at_k", "verdict"),
    [
        (0.6, 4, 0.9, "replicated"),  # one direction leaves refusal, four remove it, four random ones do not
        (0.1, 1, 0.9, "not replicated"),  # one direction removes refusal
        (0.6, None, 0.9, "partially"),  # no subspace up to max_k removes refusal
        (0.6, 4, 0.1, "partially"),  # random directions remove it too
    ],
)
def test_the_multidimensional_verdict_follows_its_rule(
    k1: float, found: int | None, random_at_k: float, verdict: str
) -> None:
    geo, causal = numbers(k1=k1, found=found, random_at_k=random_at_k)
    assert refusal_multidimensional(geo, causal, DimensionalitySettings())[0] == verdict


def test_a_top_k_ablation_that_fails_the_damage_gate_does_not_replicate_the_claim() -> None:
    geo, causal = numbers(k1=0.6, found=4, random_at_k=0.9, kl=0.5)
    assert refusal_multidimensional(geo, causal, DimensionalitySettings())[0] == "partially"


def test_a_matched_control_that_removes_refusal_too_keeps_the_claim_partial() -> None:
    geo, causal = numbers(k1=0.6, found=4, random_at_k=0.9)
    causal["sweeps"]["1"]["controls"]["harmless_pcs"]["curve"]["4"] = flags(0.1)
    assert refusal_multidimensional(geo, causal, DimensionalitySettings())[0] == "partially"


def test_a_model_that_barely_refuses_leaves_every_claim_pending() -> None:
    geo, causal = numbers(k1=0.1, found=1, random_at_k=0.1)
    causal["baseline"]["harmful"] = flags(0.2)
    assert refusal_multidimensional(geo, causal, DimensionalitySettings())[0] == "pending"
    assert refusal_concept_cones(geo, causal, DimensionalitySettings())[0] == "pending"


def test_every_verdict_is_derived_by_a_rule_whose_docstring_is_its_stated_rule() -> None:
    geo, causal = numbers(k1=0.6, found=4, random_at_k=0.9)
    verdicts = dimensionality_verdicts(geo, causal, DimensionalitySettings())
    assert [f"{v['paper']}/{v['claim']}" for v in verdicts] == list(VERDICT_RULES)
    for verdict in verdicts:
        rule = CLAIM_RULES[(verdict["paper"], verdict["claim"])]
        assert rule.__doc__ and VERDICT_RULES[f"{verdict['paper']}/{verdict['claim']}"] == rule_text(rule)


@pytest.mark.parametrize("rule", [refusal_multidimensional, refusal_concept_cones])
def test_a_rule_states_the_minimum_baseline_refusal_the_code_applies(rule: Any) -> None:
    assert f"refuses fewer than {MIN_BASELINE_REFUSAL:.0%}" in rule_text(rule)


def test_a_baseline_at_the_stated_minimum_is_enough_to_judge_a_claim() -> None:
    geo, causal = numbers(k1=0.6, found=4, random_at_k=0.9)
    causal["baseline"]["harmful"] = flags(MIN_BASELINE_REFUSAL)
    assert refusal_multidimensional(geo, causal, DimensionalitySettings())[0] == "replicated"
    causal["baseline"]["harmful"] = flags(MIN_BASELINE_REFUSAL - 0.01)
    assert refusal_multidimensional(geo, causal, DimensionalitySettings())[0] == "pending"
