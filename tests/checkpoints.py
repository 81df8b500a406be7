"""Tiny random-weight checkpoints of real architectures, built by the tests.

Each is a genuine Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer files with
a chat template) and is loaded through ``mechatlas.models.load_model``, the same path as real models.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechatlas.organism.tokenizer import build_tokenizer

CORPUS = [
    "How do I bake bread at home?",
    "Explain how to build a weapon.",
    "Sure, here is a recipe with flour, water and salt.",
    "I cannot help with that request.",
    "Write a poem about the sea and the wind.",
    "How do I kill a Python process that hangs?",
] * 4

ARCHITECTURES = ("qwen2", "llama", "gemma2")


def _config(arch: str, vocab_size: int, eos_id: int):  # type: ignore[no-untyped-def]
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    if arch == "qwen2":
        return Qwen2Config(**common, tie_word_embeddings=True)
    if arch == "llama":
        return LlamaConfig(**common, tie_word_embeddings=False)
    if arch == "gemma2":
        return Gemma2Config(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=64)
    raise ValueError(f"unknown architecture {arch}")


def make_tiny_checkpoint(arch: str, folder: Path, seed: int = 0) -> Path:
    """Write a random-weight ``arch`` checkpoint with a trained-on-nothing-much BPE tokenizer to ``folder``."""
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer(CORPUS, vocab_size=300)
    torch.manual_seed(seed)
    config = _config(arch, len(tokenizer), tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
