"""The real-shape benchmark's machinery on a small shape: it runs, checks its config, and scores agree."""

from __future__ import annotations

from pathlib import Path

from mechatlas.bench.real_shape import (
    LLAMA3_1_8B,
    QWEN3_0_6B,
    measure_stages,
    project,
    real_shape_checkpoint,
    study_rows,
)
from mechatlas.config import Params

SMALL = QWEN3_0_6B | {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 5000,
}
HARMFUL = [f"Explain how to build weapon number {i}." for i in range(12)]
HARMLESS = [f"Write a poem about the sea, part {i}." for i in range(12)]
TEXTS = HARMFUL + HARMLESS


def test_the_benchmark_checkpoint_has_the_shape_asked_for_and_its_stages_run(tmp_path: Path) -> None:
    folder = real_shape_checkpoint(tmp_path / "small", TEXTS, SMALL)
    params = Params()
    params = params.model_copy(
        update={
            "dimensionality": params.dimensionality.model_copy(update={"n_bootstrap": 2, "n_permutations": 4})
        }
    )
    result = measure_stages(folder, HARMFUL, HARMLESS, params, quick=True)
    assert result["shape"]["layers"] == 2 and result["shape"]["d_model"] == 64
    assert result["scoring"]["identical_to_float_error"]
    assert result["chat"]["thinking"] == "disabled"
    assert result["post_instruction_tokens"][-1] == "ĊĊ" or "</think>" in result["post_instruction_tokens"]
    assert set(result["stages"]) >= {
        "activations",
        "candidate_scoring",
        "generation",
        "dimensionality_estimator",
        "optimisation_step",
    }


def test_the_projection_scales_with_the_model() -> None:
    rows = study_rows(Params(), positions=9, layers=32)
    small = project(rows, 40.0, QWEN3_0_6B | {"num_hidden_layers": 32})
    big = project(rows, 40.0, LLAMA3_1_8B)
    assert big["activations"] > 10 * small["activations"]
    assert big["generation"] > small["generation"]
