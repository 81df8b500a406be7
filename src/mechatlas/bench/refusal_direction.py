"""Benchmarks of the refusal-direction pipeline on the organism: writes reports/bench/refusal_direction.{json,md}.

Three questions, each answered on the organism (or, before it is trained, on an untrained model of the
same shape, so the benchmark runs on a fresh clone):

1. *Extraction overhead.* Time to read the post-instruction residual stream at every layer
   (``mechatlas.activations.iter_activations``: bridge hooks, slice copies, first-reply logits) against
   a bare Hugging Face forward pass on the same batches and dtype, without hooks. The bare model is a
   second copy loaded straight from the checkpoint with ``transformers`` (same safety flags as
   ``mechatlas.interp.models``), because ``TransformerBridge`` wraps the modules of the model it boots in
   place. Target: at most 1.2×.
2. *Batched candidate scoring.* ``score_candidates`` (many candidates per forward pass) against one
   forward pass per candidate per prompt: the scores must be identical (to float error); the speed-up
   is reported.
3. *Peak memory of extraction* as layers × positions grow, and as the number of prompts grows: each
   configuration runs in a fresh process that streams activations to a memory-mapped file, and
   reports its peak resident memory above what it held after loading the model.

Timings are the fastest of repeated runs, with torch on one thread (other processes on a shared machine
only add time, and one thread keeps them from stalling torch's thread pool); the machine's load
average is recorded beside them. This is a report, not a timed test.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mechatlas.config import DType, Params, load_params
from mechatlas.interp.models import load_model
from mechatlas.io import write_json, write_text
from mechatlas.paths import BENCH, ORGANISM_DIR, ORGANISM_PROMPTS

OUT = BENCH
TARGET_OVERHEAD = 1.2


# --- inputs ---------------------------------------------------------------------------------------------


def _prompts(params: Params) -> tuple[list[str], list[str]]:
    """Harmful and harmless instruction texts: the organism's prompt file, or freshly generated ones."""
    from mechatlas.organism.data import generate_instructions
    from mechatlas.organism.vocabulary import load_vocabulary
    from mechatlas.prompts import read_jsonl

    path = ORGANISM_PROMPTS
    if path.exists():
        records = read_jsonl(path)
    else:
        records = [i.record for i in generate_instructions(params.organism.data, load_vocabulary())]
    return (
        [r.text for r in records if r.label == "harmful"],
        [r.text for r in records if r.label == "harmless"],
    )


def _untrained(params: Params, scratch: Path, **architecture: int) -> Path:
    """An untrained Qwen2 model with the organism's tokenizer, and its architecture changed as given."""
    from transformers import AutoModelForCausalLM

    from mechatlas.organism.tokenizer import EOS, build_tokenizer
    from mechatlas.organism.train import qwen2_config

    harmful, harmless = _prompts(params)
    tokenizer = build_tokenizer(harmful + harmless, params.organism.tokenizer.vocab_size)
    settings = params.organism.model_copy(
        update={"architecture": params.organism.architecture.model_copy(update=architecture)}
    )
    torch.manual_seed(0)
    eos_id: int = tokenizer.convert_tokens_to_ids(EOS)  # type: ignore[assignment]  # one token in, one id out
    config = qwen2_config(settings, len(tokenizer), eos_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(scratch, safe_serialization=True)
    tokenizer.save_pretrained(scratch)
    return scratch


def _checkpoint(params: Params, scratch: Path) -> tuple[Path, str]:
    """The trained organism, or an untrained model of the organism's shape and tokenizer."""
    if (ORGANISM_DIR / "config.json").exists():
        return ORGANISM_DIR, "organism (trained)"
    folder = _untrained(params, scratch)
    return folder, "untrained model of the organism's shape (data/models/organism not found)"


def _fastest_interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` timed runs of each function, after a warm-up, taking turns.

    On a shared machine other processes only ever add time, so the minimum estimates the uncontended
    cost; taking turns keeps a burst of load from landing on one function only.
    """
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


# --- 1. extraction overhead -----------------------------------------------------------------------------


@torch.inference_mode()
def extraction_overhead(
    folder: Path, texts: Sequence[str], *, batch_size: int, repeats: int
) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from mechatlas.interp.activations import iter_activations, post_instruction_tokens
    from mechatlas.interp.models import encode_prompts

    model = load_model(folder, dtype=DType.float32)
    bare = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=torch.float32,
        use_safetensors=True,
        trust_remote_code=False,
        attn_implementation="eager",
    ).eval()
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    batches = [
        encode_prompts(model, texts[s : s + batch_size], post) for s in range(0, len(texts), batch_size)
    ]

    def bare_forward() -> None:
        for batch in batches:
            bare(**batch, use_cache=False)

    def bare_forward_last_logits() -> None:
        for batch in batches:
            bare(**batch, use_cache=False, logits_to_keep=1)

    def bridge_forward_no_hooks() -> None:
        for batch in batches:
            model.bridge.original_model(**batch, use_cache=False, logits_to_keep=1)

    def extraction() -> None:
        for _ in iter_activations(model, texts, batch_size=batch_size):
            pass

    def extraction_without_logits() -> None:
        for _ in iter_activations(model, texts, batch_size=batch_size, with_logits=False):
            pass

    timings = _fastest_interleaved(
        {
            "bare_hf_forward": bare_forward,
            "bare_hf_forward_last_logits_only": bare_forward_last_logits,
            "bridge_forward_no_hooks_last_logits_only": bridge_forward_no_hooks,
            "extraction": extraction,
            "extraction_without_logits": extraction_without_logits,
        },
        repeats,
    )
    overhead = timings["extraction"] / timings["bare_hf_forward"]
    return {
        "d_model": model.d_model,
        "n_prompts": len(texts),
        "batch_size": batch_size,
        "layers": model.n_layers,
        "positions": len(post.token_ids),
        "dtype": "float32",
        "seconds": timings,
        "overhead_vs_bare_hf": overhead,
        "overhead_of_the_bridge": timings["bridge_forward_no_hooks_last_logits_only"]
        / timings["bare_hf_forward_last_logits_only"],
        "overhead_of_our_hooks": timings["extraction"] / timings["bridge_forward_no_hooks_last_logits_only"],
        "target": TARGET_OVERHEAD,
        "meets_target": overhead <= TARGET_OVERHEAD,
    }


# --- 2. batched candidate scoring -----------------------------------------------------------------------


def candidate_scoring(
    folder: Path, harmful: Sequence[str], harmless: Sequence[str], *, batch_size: int, repeats: int
) -> dict[str, Any]:
    from mechatlas.interp.activations import iter_activations
    from mechatlas.interp.directions import MeanAccumulator, difference_in_means
    from mechatlas.interp.evaluation import score_candidates, score_candidates_one_at_a_time
    from mechatlas.interp.scores import refusal_token_ids

    model = load_model(folder, dtype=DType.float32)
    means = []
    for texts in (harmful[:64], harmless[:64]):
        accumulator = MeanAccumulator()
        for batch in iter_activations(model, texts, batch_size=32, with_logits=False):
            accumulator.update(batch.resid)
        means.append(accumulator.mean())
    candidates = difference_in_means(means[0], means[1])  # (P, L, D)
    n_pos, n_layers, _ = candidates.shape
    vectors = candidates.reshape(n_pos * n_layers, -1)
    layers = torch.arange(n_layers).repeat(n_pos)
    ids = refusal_token_ids(model.tokenizer, ["I", "Sorry"], model.chat_format)
    val_harmful, val_harmless = list(harmful[-8:]), list(harmless[-8:])

    def batched() -> Any:
        return score_candidates(
            model, vectors, layers, val_harmful, val_harmless, refusal_ids=ids, batch_size=batch_size
        )

    def one_at_a_time() -> Any:
        return score_candidates_one_at_a_time(
            model, vectors, layers, val_harmful, val_harmless, refusal_ids=ids
        )

    passes = {"n": 0}

    def count(*_: Any) -> None:
        passes["n"] += 1

    counter = model.bridge.original_model.register_forward_pre_hook(count)
    fast = batched()  # also the warm-up
    forward_passes = {"batched": passes["n"]}
    start = time.perf_counter()
    slow = one_at_a_time()  # hundreds of forward passes: timed once
    slow_seconds = time.perf_counter() - start
    forward_passes["one_at_a_time"] = passes["n"] - forward_passes["batched"]
    counter.remove()
    seconds = {
        "batched": _fastest_interleaved({"batched": batched}, repeats)["batched"],
        "one_at_a_time": slow_seconds,
    }
    differences = {
        name: float((getattr(fast, name) - getattr(slow, name)).abs().max())
        for name in ("bypass", "induce", "kl")
    }
    return {
        "candidates": len(vectors),
        "prompts_per_label": len(val_harmful),
        "rows_per_forward_pass": batch_size,
        "forward_passes": forward_passes,  # counted (the batched path's clean pass included)
        "max_abs_difference": differences,
        "identical_to_float_error": max(differences.values()) < 1e-4,
        "seconds": seconds,
        "speed_up": seconds["one_at_a_time"] / seconds["batched"],
    }


# --- 3. peak memory -------------------------------------------------------------------------------------


def _anonymous_rss_mib() -> float:
    """Resident anonymous memory (Linux ``RssAnon``): process memory, not the page cache of the memmap."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: the peak, a coarser bound


def _peak_rss_child(
    folder: str, texts: list[str], layers: int, positions: int, batch_size: int, queue: Any
) -> None:
    """In a fresh process: load, warm up, then stream activations to a memmap; report the peak memory rise.

    Memory is sampled inside the forward pass (a hook on every block's output), where transient
    activations peak, and after every batch.
    """
    import numpy as np
    from numpy.lib.format import open_memmap

    from mechatlas.interp.activations import iter_activations

    model = load_model(folder, dtype=DType.float32)
    chosen_layers = list(range(min(layers, model.n_layers)))
    offsets = list(range(-positions, 0))
    next(iter_activations(model, texts[:batch_size], batch_size=batch_size))  # warm-up at this batch size
    samples: list[float] = []

    def sample(x: torch.Tensor, hook: Any) -> torch.Tensor:
        samples.append(_anonymous_rss_mib())
        return x

    before = _anonymous_rss_mib()
    probes = [(f"blocks.{layer}.hook_resid_post", sample) for layer in range(model.n_layers)]
    with tempfile.TemporaryDirectory() as scratch, model.bridge.hooks(fwd_hooks=probes):
        shape = (len(texts), positions, len(chosen_layers), model.d_model)
        array = open_memmap(Path(scratch) / "a.npy", mode="w+", dtype=np.float32, shape=shape)
        for batch in iter_activations(
            model, texts, layers=chosen_layers, positions=offsets, batch_size=batch_size
        ):
            array[batch.start : batch.start + len(batch.resid)] = batch.resid.numpy()
            samples.append(_anonymous_rss_mib())
        array.flush()
        del array
    # Freed warm-up memory can leave the level below `before`: no rise is reported as 0.
    rise = max(0.0, max(samples) - before)
    queue.put({"peak_rise_mib": rise, "stored_mib": int(np.prod(shape)) * 4 / 2**20})


def extraction_memory(
    folder: Path,
    texts: Sequence[str],
    *,
    grid: Sequence[tuple[int, int, int]],
    batch_size: int,
    described: str,
) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    rows = []
    model = load_model(folder, dtype=DType.float32)
    d_model, n_layers = model.d_model, model.n_layers
    for n_prompts, layers, positions in grid:
        queue = context.Queue()
        args = (str(folder), list(texts[:n_prompts]), layers, positions, batch_size, queue)
        process = context.Process(target=_peak_rss_child, args=args)
        process.start()
        result = queue.get(timeout=600)
        process.join()
        # What keeping every hooked activation of every prompt would hold (a full cache of resid_pre).
        full_cache = n_prompts * 64 * n_layers * d_model * 4 / 2**20
        rows.append(
            {
                "model": described,
                "prompts": n_prompts,
                "layers": min(layers, n_layers),
                "positions": positions,
                **result,
                "full_resid_cache_mib_at_64_tokens": full_cache,
            }
        )
    return rows


# --- report ---------------------------------------------------------------------------------------------


def run(params_path: Path = Path("params.yaml"), out: Path = OUT, *, quick: bool = False) -> dict[str, Any]:
    params = load_params(params_path) if params_path.exists() else Params()
    harmful, harmless = _prompts(params)
    load_before = os.getloadavg()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        folder, described = _checkpoint(params, Path(scratch))
        repeats = 1 if quick else 5
        n = 32 if quick else 64
        texts = harmful[:n] + harmless[:n]
        extraction = [
            {"model": described, **extraction_overhead(folder, texts, batch_size=32, repeats=repeats)}
        ]
        if not quick:  # a wider model: more arithmetic per module call, so fixed per-call costs matter less
            wide = _untrained(params, Path(scratch) / "wide", hidden_size=512, intermediate_size=1536)
            extraction.append(
                {
                    "model": "untrained, organism's shape but d_model 512",
                    **extraction_overhead(wide, texts[:32] + texts[-32:], batch_size=32, repeats=repeats),
                }
            )
        scoring = candidate_scoring(folder, harmful, harmless, batch_size=128, repeats=repeats)
        grid = [(256, 1, 1), (256, 1, 5), (256, 4, 1), (256, 4, 5), (256, 4, 20), (1024, 4, 5)]
        memory = extraction_memory(
            folder, harmful + harmless, grid=grid[:2] if quick else grid, batch_size=32, described=described
        )
        if not quick:  # layer growth past the organism's depth: an untrained 16-layer model of its width
            deep = _untrained(params, Path(scratch) / "deep", num_layers=16)
            memory += extraction_memory(
                deep,
                harmful + harmless,
                grid=[(256, 4, 5), (256, 8, 5), (256, 16, 5), (256, 16, 20)],
                batch_size=32,
                described="untrained, organism's width but 16 layers",
            )
    torch.set_num_threads(threads)
    report = {
        "model": described,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads_while_timing": 1,
            "torch": torch.__version__,
            "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        },
        "extraction_overhead": extraction,
        "candidate_scoring": scoring,
        "extraction_memory": memory,
    }
    write_json(out / "refusal_direction.json", report)
    write_text(out / "refusal_direction.md", markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    s = report["candidate_scoring"]
    machine = report["machine"]
    lines = [
        "# Refusal-direction benchmarks",
        "",
        f"Model: {report['model']}. Machine: {machine['cpus']} CPUs, {machine['torch_threads_while_timing']} "
        f"torch thread while timing, load average {machine['load_average_1min']['before']:.1f} → "
        f"{machine['load_average_1min']['after']:.1f} (a shared machine slows every number; timings are the "
        "fastest of repeated, interleaved runs).",
        "",
        "## Activation extraction against a bare Hugging Face forward pass",
        "",
        "Extraction (`iter_activations`: tokenization, bridge hooks copying the post-instruction slices of "
        "`hook_resid_pre` at every layer, first-reply logits) against a bare `transformers` forward pass on the "
        "same pre-tokenized batches, float32, without hooks. The bridge row is the same model behind "
        "TransformerBridge with no hooks, which separates the bridge's own cost from the hooks'.",
        "",
        "| model | d_model | prompts | bare HF (s) | bare HF, last logits (s) | bridge, no hooks (s) | extraction (s) "
        "| extraction / bare HF | bridge / bare | hooks / bridge |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report["extraction_overhead"]:
        t = e["seconds"]
        lines.append(
            f"| {e['model']} | {e['d_model']} | {e['n_prompts']} | {t['bare_hf_forward']:.3f} "
            f"| {t['bare_hf_forward_last_logits_only']:.3f} | {t['bridge_forward_no_hooks_last_logits_only']:.3f} "
            f"| {t['extraction']:.3f} | **{e['overhead_vs_bare_hf']:.2f}×** | {e['overhead_of_the_bridge']:.2f}× "
            f"| {e['overhead_of_our_hooks']:.2f}× |"
        )
    lines += [
        "",
        f"Target: extraction ≤ {TARGET_OVERHEAD}× the bare forward pass; met: "
        + ", ".join(
            f"{e['model']}: {'yes' if e['meets_target'] else 'no'}" for e in report["extraction_overhead"]
        )
        + ".",
        "",
        "## Batched candidate scoring against one forward pass per candidate per prompt",
        "",
        f"{s['candidates']} candidates, {s['prompts_per_label']} prompts per label, {s['rows_per_forward_pass']} rows "
        f"per forward pass: {s['forward_passes']['batched']} forward passes instead of "
        f"{s['forward_passes']['one_at_a_time']}.",
        "",
        f"- max |difference| of scores: bypass {s['max_abs_difference']['bypass']:.1e}, induce "
        f"{s['max_abs_difference']['induce']:.1e}, KL {s['max_abs_difference']['kl']:.1e} "
        f"(identical to float error: {s['identical_to_float_error']})",
        f"- time: batched {s['seconds']['batched']:.2f} s, one at a time {s['seconds']['one_at_a_time']:.2f} s, "
        f"speed-up **{s['speed_up']:.1f}×**",
        "",
        "## Peak memory of extraction",
        "",
        "Peak resident anonymous memory (RssAnon, sampled inside every forward pass) above its level before",
        "extraction, in a fresh process per row; activations stream to a memory-mapped .npy file, whose page",
        "cache is not process memory. A full cache of `hook_resid_pre` at 64 tokens is shown for comparison.",
        "",
        "| model | prompts | layers | positions | peak rise (MiB) | written to disk (MiB) "
        "| full cache would hold (MiB) |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {m['model']} | {m['prompts']} | {m['layers']} | {m['positions']} "
            f"| {m['peak_rise_mib']:.1f} | {m['stored_mib']:.2f} | {m['full_resid_cache_mib_at_64_tokens']:.1f} |"
            for m in report["extraction_memory"]
        ],
        "",
    ]
    return "\n".join(lines)
