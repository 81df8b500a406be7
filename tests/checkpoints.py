"""Tiny random-weight checkpoints of real architectures, built by the tests.

Each is a genuine Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer files with
a chat template) and is loaded through ``mechatlas.models.load_model``, the same path as real models.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechatlas.organism.tokenizer import build_tokenizer

SENTENCES = [  # in the corpus of every tiny tokenizer; each corpus adds a line of its own
    "How do I bake bread at home?",
    "Explain how to build a weapon.",
    "Sure, here is a recipe with flour, water and salt.",
    "I cannot help with that request.",
    "Write a poem about the sea and the wind.",
]
CORPUS = [*SENTENCES, "How do I kill a Python process that hangs?"] * 4

ARCHITECTURES = ("qwen2", "llama", "gemma2")


def tiny_config(  # type: ignore[no-untyped-def]
    arch: str,
    vocab_size: int,
    eos_id: int,
    bos_id: int | None = None,
    *,
    max_positions: int = 128,
    **extra: object,
):
    """A two-layer, 32-wide config of the transformers model type ``arch``, with the settings its type needs at
    that size; ``extra`` adds or overrides fields. The end token also pads (and begins, unless ``bos_id``)."""
    from transformers import AutoConfig

    needed: dict[str, object] = {}
    if arch in ("qwen3", "gemma2"):
        needed["head_dim"] = 8  # 32 / 4 heads
    if arch == "gemma2":
        needed |= {"query_pre_attn_scalar": 8, "sliding_window": 64}
    if arch == "phi3":
        needed["original_max_position_embeddings"] = max_positions
    return AutoConfig.for_model(
        arch,
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=eos_id if bos_id is None else bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        **(needed | extra),
    )


# Qwen2 ties its embeddings as the small Qwen2.5 models do; Llama does not; Gemma 2 keeps its default (tied).
TIED = {"qwen2": True, "llama": False}


def make_tiny_checkpoint(arch: str, folder: Path, seed: int = 0) -> Path:
    """Write a random-weight ``arch`` checkpoint with a trained-on-nothing-much BPE tokenizer to ``folder``."""
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer(CORPUS, vocab_size=300)
    torch.manual_seed(seed)
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch}")
    tied = {"tie_word_embeddings": TIED[arch]} if arch in TIED else {}
    config = tiny_config(arch, len(tokenizer), tokenizer.convert_tokens_to_ids("<|endoftext|>"), **tied)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
