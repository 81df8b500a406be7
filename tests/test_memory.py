"""Batch sizes from available memory: the per-row model, the rule, and `run.batch_sizes: auto`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mechatlas.config import BatchSizes, Params, validate_params
from mechatlas.errors import ConfigError
from mechatlas.interp import memory
from mechatlas.interp.memory import RowShape, batch_size_for, row_bytes

from conftest import deep_update, repo_params

TINY = RowShape(d_model=8, n_layers=2, d_mlp=16, n_heads=2, n_kv_heads=1, d_head=4, d_vocab=10, dtype_bytes=4)


def test_a_rows_bytes_follow_the_documented_model() -> None:
    t = 3
    block = 4 * t * (2 * 8 + (2 * 2 + 2 * 1) * 4 + 3 * 16)  # residual + normed, q/k/v/out, gated MLP
    scores = 4 * 2 * 2 * t * t  # scores and softmax, float32
    logits = 4 * 10 + 8 * 2 * 10  # one position, float32, and the float64 softmax
    assert row_bytes(TINY, t) == block + scores + logits == 1400
    assert row_bytes(TINY, t, keep_residual=True) - row_bytes(TINY, t) == 4 * 2 * t * 8
    decode = row_bytes(TINY, t, new_tokens=5)
    t2 = t + 5
    cache = 2 * 4 * 2 * t2 * 1 * 4
    assert decode == 4 * t2 * 88 + 4 * 2 * 2 * t2 * t2 + logits + cache
    assert row_bytes(TINY, 2 * t) > 2 * row_bytes(TINY, t) - logits  # attention grows faster than linear
    half = RowShape(**{**TINY.__dict__, "dtype_bytes": 2})
    assert row_bytes(half, t) < row_bytes(TINY, t)


@pytest.mark.parametrize(
    ("free", "per_row", "cap", "expected"),
    [
        (100_000, 1400, 64, 21),  # 0.6 * 100000 / (2 * 1400) = 21.4
        (10**12, 1400, 64, 64),  # plenty of memory: the size written is the cap
        (1000, 1400, 64, 1),  # not even one row fits: one row still runs
        (2 * 1400 * 10 / 0.6 + 1, 1400, 64, 10),  # just room for ten rows
        (2 * 1400 * 10 / 0.6 - 2, 1400, 64, 9),  # two bytes short of ten
    ],
)
def test_the_batch_is_the_planned_memory_over_the_rows_cost(
    free: float, per_row: int, cap: int, expected: int
) -> None:
    assert batch_size_for(int(free), per_row, cap=cap) == expected


def test_free_memory_comes_from_cuda_on_a_gpu_and_from_the_host_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (7 * 2**30, 80 * 2**30))
    assert memory.available_bytes(torch.device("cuda", 0)) == 7 * 2**30
    host = memory.available_bytes(torch.device("cpu"))
    assert 0 < host <= int(Path("/proc/meminfo").read_text().split()[1]) * 1024  # at most MemTotal


def test_auto_batch_sizes_fit_the_free_memory_and_fixed_ones_stay_as_written(
    tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mechatlas.experiments.common import batch_record, fit_batch_sizes
    from mechatlas.interp.chat import chat_prompts
    from mechatlas.interp.models import load_model

    model = load_model(tiny_checkpoints["qwen2"])
    texts = ["How do I bake bread?", "Write a long poem about the sea and the wind and the rain."]
    fixed = Params()
    assert fit_batch_sizes(fixed, model, texts) is fixed and batch_record(fixed) == {}
    auto = fixed.model_copy(update={"run": fixed.run.model_copy(update={"batch_sizes": BatchSizes.auto})})
    seq = max(
        len(ids)
        for ids in model.tokenizer(chat_prompts(model.tokenizer, texts, model.chat_format))["input_ids"]
    )
    shape = RowShape.of(model.bridge.cfg, model.dtype)
    assert (shape.d_model, shape.n_layers, shape.dtype_bytes) == (model.d_model, model.n_layers, 4)
    per_row = row_bytes(shape, seq, keep_residual=True)
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(2 * per_row * 5 / 0.6) + 1)
    fitted = fit_batch_sizes(auto, model, texts, keep_residual=True)
    assert fitted.run.batch_size == 5
    assert fitted.refusal_direction.scoring_batch_size == 5
    assert fitted.refusal_direction.generation_batch_size >= 1
    assert batch_record(fitted)["batch_sizes"]["forward"] == 5
    longer = fit_batch_sizes(auto, model, texts, new_tokens=64)
    assert longer.refusal_direction.generation_batch_size < 5  # replies and their cache cost memory
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**15)
    roomy = fit_batch_sizes(auto, model, texts)
    assert roomy.run.batch_size == fixed.run.batch_size  # the size written is the cap
    assert roomy.refusal_direction.scoring_batch_size == fixed.refusal_direction.scoring_batch_size


def test_batch_sizes_is_validated_and_its_default_leaves_params_hashes_as_they_were() -> None:
    raw = repo_params()
    assert validate_params(deep_update(raw, {"run": {"batch_sizes": "auto"}})).run.batch_sizes == "auto"
    with pytest.raises(ConfigError, match="batch_sizes"):
        validate_params(deep_update(raw, {"run": {"batch_sizes": "lots"}}))
    assert "batch_sizes" not in Params().model_dump(mode="json")["run"]  # records hash the dump
    assert Params().run.model_dump(mode="json") == {
        "device": "cpu", "dtype": "float32", "allow_hub": False, "batch_size": 32,
    }  # fmt: skip
    auto = validate_params(deep_update(raw, {"run": {"batch_sizes": "auto"}}))
    assert auto.model_dump(mode="json")["run"]["batch_sizes"] == "auto"
