#!/usr/bin/env python3
"""Repeat the real-shape timings on a GPU in bfloat16; never needed by the tests.

    PYTHONPATH=src python scripts/gpu_bench.py [--model FOLDER] [--out reports/bench/gpu.json]

With no ``--model`` it writes the random-weight Qwen3-0.6B-shape checkpoint of ``make bench``
(``mechatlas.bench.real_shape``) to a temporary folder; with one, it times that checkpoint instead (a
local Llama-3.1-8B-Instruct folder, say). It loads the model in bfloat16 on ``cuda`` and reports, with
CUDA synchronisation around every timed call and the fastest of ``--repeats`` runs:

- extraction (``iter_activations``: hooks copying every layer's post-instruction slice, first-reply
  logits) against a bare Hugging Face forward pass on the same batches, and their ratio;
- batched candidate scoring against one forward pass per candidate per prompt (speed-up, max |diff|);
- greedy generation throughput (new tokens per second) at the batch size given;
- peak GPU memory of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def fastest(function: Callable[[], Any], repeats: int) -> float:
    function()  # warm-up (kernels, allocator)
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def peak_mib(function: Callable[[], Any]) -> float:
    torch.cuda.reset_peak_memory_stats()
    function()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="checkpoint folder (default: the real-shape one)"
    )
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/gpu.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here; run it on a machine with a GPU", file=sys.stderr)
        return 2

    from transformers import AutoModelForCausalLM

    from mechatlas.bench.real_shape import real_shape_checkpoint
    from mechatlas.bench.refusal_direction import _prompts
    from mechatlas.config import Params
    from mechatlas.interp.activations import iter_activations
    from mechatlas.interp.directions import MeanAccumulator, difference_in_means
    from mechatlas.interp.evaluation import score_candidates, score_candidates_one_at_a_time
    from mechatlas.interp.models import encode_prompts, greedy_generate, load_model, post_instruction_tokens
    from mechatlas.interp.scores import refusal_token_ids

    harmful, harmless = _prompts(Params())
    scratch = tempfile.TemporaryDirectory()
    folder = args.model or real_shape_checkpoint(Path(scratch.name) / "qwen3-0.6b-shape", harmful + harmless)
    model = load_model(folder, device="cuda", dtype="bfloat16")
    bare = (
        AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.bfloat16, use_safetensors=True, trust_remote_code=False
        )
        .to("cuda")
        .eval()
    )
    half = args.prompts // 2
    texts = harmful[:half] + harmless[:half]
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    batches = [
        encode_prompts(model, texts[s : s + args.batch_size], post)
        for s in range(0, len(texts), args.batch_size)
    ]

    @torch.inference_mode()
    def bare_forward() -> None:
        for batch in batches:
            bare(**batch, use_cache=False, logits_to_keep=1)

    def extraction() -> None:
        for _ in iter_activations(model, texts, batch_size=args.batch_size):
            pass

    report: dict[str, Any] = {
        "model": str(folder),
        "device": torch.cuda.get_device_name(),
        "dtype": "bfloat16",
        "prompts": len(texts),
        "batch_size": args.batch_size,
    }
    seconds = {
        "bare_forward_last_logits": fastest(bare_forward, args.repeats),
        "extraction": fastest(extraction, args.repeats),
    }
    report["extraction"] = seconds | {
        "ratio": seconds["extraction"] / seconds["bare_forward_last_logits"],
        "peak_mib": peak_mib(extraction),
    }

    means = []
    for group in (harmful[:half], harmless[:half]):
        accumulator = MeanAccumulator()
        for batch in iter_activations(model, group, batch_size=args.batch_size, with_logits=False):
            accumulator.update(batch.resid)
        means.append(accumulator.mean())
    candidates = difference_in_means(means[0], means[1])
    flat = candidates.reshape(-1, candidates.shape[-1])
    picks = torch.linspace(0, len(flat) - 1, args.candidates).round().long()
    vectors, layers = flat[picks], (picks % candidates.shape[1]).long()
    ids = refusal_token_ids(model.tokenizer, ["I", "Sorry"], model.chat_format)
    h_val, b_val = harmful[-8:], harmless[-8:]
    fast = score_candidates(model, vectors, layers, h_val, b_val, refusal_ids=ids, batch_size=256)
    batched = fastest(
        lambda: score_candidates(model, vectors, layers, h_val, b_val, refusal_ids=ids, batch_size=256),
        args.repeats,
    )
    torch.cuda.synchronize()
    start = time.perf_counter()
    slow = score_candidates_one_at_a_time(model, vectors, layers, h_val, b_val, refusal_ids=ids)
    torch.cuda.synchronize()
    single = time.perf_counter() - start
    report["candidate_scoring"] = {
        "candidates": len(vectors),
        "prompts_per_label": len(h_val),
        "batched_seconds": batched,
        "one_at_a_time_seconds": single,
        "speed_up": single / batched,
        "max_abs_difference": {
            k: float((getattr(fast, k) - getattr(slow, k)).abs().max()) for k in ("bypass", "induce", "kl")
        },
    }

    generated = texts[: args.batch_size]
    gen_seconds = fastest(
        lambda: greedy_generate(model, generated, max_new_tokens=args.new_tokens, batch_size=args.batch_size),
        1,
    )
    report["generation"] = {
        "prompts": len(generated),
        "max_new_tokens": args.new_tokens,
        "seconds": gen_seconds,
        "new_tokens_per_second_upper_bound": len(generated) * args.new_tokens / gen_seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
