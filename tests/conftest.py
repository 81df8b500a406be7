"""Shared fixtures: tiny configs, tiny random-weight checkpoints, and the repository root."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # tests/checkpoints.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Overrides that shrink the study to seconds: a 2-layer organism trained for a few steps on a few
# dozen prompts. Sections added by other stages get their own tiny overrides here.
TINY_OVERRIDES: dict[str, Any] = {
    "run": {"batch_size": 16},
    "organism": {
        "data": {"harmful_per_domain": 8, "harmless": 40, "alarming_harmless": 8},
        "tokenizer": {"vocab_size": 400},
        "architecture": {
            "hidden_size": 32,
            "num_layers": 2,
            "num_heads": 4,
            "num_kv_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 96,
        },
        "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 2, "threads": 1},
        # The planted organisms of the params/planted.yaml overlay, planted in a few steps.
        "planted": {
            name: {
                **spec,
                "steps": 4,
                "prompts_per_label": 4,
                "adversary_every": 2,
                "bypass_every": 2,
                "bypass_steps": 2,
                "bypass_prompts": 4,
            }
            for name, spec in yaml.safe_load((REPO / "params/planted.yaml").read_text())["organism"][
                "planted"
            ].items()
        },
        "verification": {"random_subspaces": 1, "search_steps": 2, "search_prompts": 8, "dim_prompts": 8},
    },
    "refusal_direction": {
        "n_train": 16,
        "n_val": 4,
        "n_test": 8,
        "max_new_tokens": 4,
        "bootstrap_resamples": 100,
        "generation_batch_size": 16,
        "scoring_batch_size": 64,
    },
    "dimensionality": {
        "max_k": 4,
        "n_permutations": 20,
        "n_bootstrap": 10,
        "spectral_max_rank": 16,
        "probe_max_k": 4,
        "n_causal_prompts": 16,
        "cone_samples": 2,
        "optimisation": {
            "train_prompts": 8,
            "target_tokens": 2,
            "batch_size": 4,
            "steps": 2,
            "rdo_seeds": 2,
            "max_m": 2,
            "eval_samples": 1,
        },
    },
}


def deep_update(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def repo_params() -> dict[str, Any]:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def tiny_params_dict() -> dict[str, Any]:
    return deep_update(repo_params(), TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny random-weight checkpoint per architecture, built once per test session."""
    from checkpoints import ARCHITECTURES, make_tiny_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {arch: make_tiny_checkpoint(arch, root / arch) for arch in ARCHITECTURES}
