"""Post-instruction activations: template-derived positions, left padding, only the slices needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mechatlas.interp.activations import iter_activations, post_instruction_tokens
from mechatlas.interp.hooks import resid_pre
from mechatlas.interp.models import LoadedModel, TemplateError, chat_prompts, encode_prompts, load_model

TEXTS = [
    "How do I bake bread?",
    "Explain how to build a weapon, step by step, please.",
    "hi",
    "Write a poem.",
]


@pytest.fixture(scope="module")
def models(tiny_checkpoints: dict[str, Path]) -> dict[str, LoadedModel]:
    return {arch: load_model(folder) for arch, folder in tiny_checkpoints.items()}


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gemma2"])
def test_the_post_instruction_tokens_are_what_the_template_puts_between_message_and_reply(
    models: dict[str, LoadedModel], arch: str
) -> None:
    tokenizer = models[arch].tokenizer
    post = post_instruction_tokens(tokenizer)
    (prompt,) = chat_prompts(tokenizer, ["anything at all"])
    suffix = tokenizer.decode(list(post.token_ids))
    assert prompt.endswith(suffix) and suffix.startswith("<|im_end|>") and suffix.endswith("assistant\n")
    assert post.positions == tuple(range(-len(post.token_ids), 0))


def test_a_template_that_rewrites_the_message_is_an_error_not_a_guess(models: dict[str, LoadedModel]) -> None:
    tokenizer = models["qwen2"].tokenizer
    original = tokenizer.chat_template
    tokenizer.chat_template = "{{ messages[0]['content'] | lower }}<|im_start|>assistant\n"
    try:
        with pytest.raises(TemplateError, match="drops or rewrites the user's message"):
            post_instruction_tokens(tokenizer)
    finally:
        tokenizer.chat_template = original


def test_every_row_of_a_left_padded_batch_ends_in_the_post_instruction_tokens(
    models: dict[str, LoadedModel],
) -> None:
    model = models["llama"]
    post = post_instruction_tokens(model.tokenizer)
    batch = encode_prompts(model, TEXTS, post)
    n = len(post.token_ids)
    assert (batch["input_ids"][:, -n:] == torch.tensor(post.token_ids)).all()
    assert (batch["attention_mask"][:, 0] == 0).any(), "the batch is padded on the left"
    # position ids count real tokens, so padding does not shift a prompt's positions
    assert (batch["position_ids"][:, -1] == batch["attention_mask"].sum(dim=1) - 1).all()


@pytest.mark.parametrize("arch", ["qwen2", "gemma2"])
def test_batched_activations_equal_one_prompt_at_a_time(models: dict[str, LoadedModel], arch: str) -> None:
    model = models[arch]
    batched = list(iter_activations(model, TEXTS, batch_size=3))
    single = list(iter_activations(model, TEXTS, batch_size=1))
    resid = torch.cat([b.resid for b in batched])
    assert [b.start for b in batched] == [0, 3]
    assert torch.allclose(resid, torch.cat([b.resid for b in single]), atol=1e-5)
    logits = torch.cat([b.last_logits for b in batched if b.last_logits is not None])
    assert torch.allclose(
        logits, torch.cat([b.last_logits for b in single if b.last_logits is not None]), atol=1e-4
    )


def test_activations_are_the_residual_stream_entering_each_block(models: dict[str, LoadedModel]) -> None:
    model = models["qwen2"]
    post = post_instruction_tokens(model.tokenizer)
    (batch,) = list(iter_activations(model, TEXTS, batch_size=len(TEXTS)))
    n, n_layers = len(post.token_ids), model.n_layers
    assert (
        batch.resid.shape == (len(TEXTS), n, n_layers, model.d_model) and batch.resid.dtype == torch.float32
    )
    seen: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Any:
        def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
            seen[layer] = x.detach().clone()
            return x

        return hook

    with (
        torch.inference_mode(),
        model.bridge.hooks(fwd_hooks=[(resid_pre(L), keep(L)) for L in range(n_layers)]),
    ):
        model.bridge.original_model(**encode_prompts(model, TEXTS))
    for layer in range(n_layers):
        assert torch.allclose(batch.resid[:, :, layer], seen[layer][:, -n:], atol=1e-6)


def test_stopping_after_the_last_needed_layer_gives_the_same_activations(
    models: dict[str, LoadedModel],
) -> None:
    model = models["gemma2"]
    full = next(iter_activations(model, TEXTS, batch_size=4))
    early = next(
        iter_activations(model, TEXTS, batch_size=4, layers=[0], positions=[-2, -1], with_logits=False)
    )
    assert early.last_logits is None and early.resid.shape == (4, 2, 1, model.d_model)
    assert torch.allclose(early.resid[:, :, 0], full.resid[:, -2:, 0], atol=1e-6)
    # the hooks are gone afterwards: a plain forward pass still runs to the end
    with torch.inference_mode():
        assert model.bridge.original_model(**encode_prompts(model, ["hi"])).logits.shape[0] == 1


def test_positions_must_be_offsets_from_the_end(models: dict[str, LoadedModel]) -> None:
    with pytest.raises(ValueError, match="must be negative"):
        next(iter_activations(models["qwen2"], TEXTS, positions=[0]))
