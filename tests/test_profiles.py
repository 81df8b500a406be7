"""Cluster profiles: jobs that run a model ask for a GPU, and every named rule exists."""

from __future__ import annotations

import re

import yaml

from conftest import REPO

MODEL_RULES = {
    "organism_behaviour",
    "refusal_activations",
    "refusal_select",
    "refusal_orthogonalize",
    "refusal_evaluate",
    "dimensionality_instruction_activations",
    "dimensionality_causal",
}


def _rules() -> set[str]:
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r"^rule (\w+):", text, flags=re.MULTILINE))


def test_every_slurm_job_that_runs_a_model_requests_one_gpu_on_the_gpu_partition() -> None:
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    resources = profile["set-resources"]
    assert _rules() >= MODEL_RULES
    for rule in MODEL_RULES:
        assert resources[rule]["gpu"] == 1 and resources[rule]["slurm_partition"] == "gpu", rule
    assert "gpu" not in profile["default-resources"]  # CPU jobs do not hold a GPU
    assert set(resources) <= _rules()
