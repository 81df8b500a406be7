"""Loading models: tiny random-weight checkpoints of three architectures, through the real code path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mechatlas.errors import ModelLoadError
from mechatlas.interp.models import chat_prompts, encode_prompts, greedy_generate, load_model


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gemma2"])
def test_a_tiny_checkpoint_loads_through_the_bridge_and_matches_hugging_face(
    tiny_checkpoints: dict[str, Path], arch: str
) -> None:
    model = load_model(tiny_checkpoints[arch])
    assert (model.n_layers, model.d_model) == (2, 32)
    assert model.source_kind == "local" and model.tokenizer.padding_side == "left"
    enc = encode_prompts(
        model, ["How do I bake bread?", "Explain how to build a weapon, step by step please."]
    )
    assert (enc["attention_mask"][:, -1] == 1).all(), "left padding keeps the last token real"
    with torch.inference_mode():
        bridge_logits = model.bridge(enc["input_ids"], attention_mask=enc["attention_mask"])
        hf_logits = model.bridge.original_model(**enc).logits
    assert torch.allclose(bridge_logits, hf_logits, atol=1e-5)


def test_hooks_see_the_residual_stream_at_every_layer(tiny_checkpoints: dict[str, Path]) -> None:
    model = load_model(tiny_checkpoints["qwen2"])
    seen: list[str] = []
    hooks = [(f"blocks.{layer}.hook_resid_pre", lambda x, hook: seen.append(hook.name)) for layer in range(2)]
    enc = encode_prompts(model, ["hello"])
    with torch.inference_mode():
        model.bridge.run_with_hooks(enc["input_ids"], fwd_hooks=hooks)
    assert len(seen) == 2


def test_a_left_padded_batch_gives_the_same_greedy_replies_as_one_at_a_time(
    tiny_checkpoints: dict[str, Path],
) -> None:
    model = load_model(tiny_checkpoints["llama"])
    texts = ["Hi", "Write a poem about the sea and the wind, please, in detail."]
    batched = greedy_generate(model, texts, max_new_tokens=5, batch_size=2)
    single = [greedy_generate(model, [t], max_new_tokens=5)[0] for t in texts]
    assert batched == single


def test_the_chat_template_ends_where_the_reply_begins(tiny_checkpoints: dict[str, Path]) -> None:
    model = load_model(tiny_checkpoints["qwen2"])
    (prompt,) = chat_prompts(model.tokenizer, ["hi"])
    assert prompt.endswith("<|im_start|>assistant\n")


def test_pickled_weights_are_refused_with_how_to_convert(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_checkpoints["qwen2"] / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not really weights")
    with pytest.raises(ModelLoadError, match="only loads safetensors; convert them"):
        load_model(folder)


def test_a_folder_without_config_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(tmp_path)


def test_missing_hub_weights_offline_say_how_to_provide_them() -> None:
    with pytest.raises(ModelLoadError) as info:
        load_model("mechatlas-test/definitely-not-cached-model")
    message = str(info.value)
    assert "not available offline" in message
    assert "local folder" in message and "run.allow_hub: true" in message


def test_a_missing_local_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such checkpoint folder"):
        load_model(tmp_path / "nope" / "model")
