"""The study's stages at real shape: a random-weight model with Qwen3-0.6B's exact configuration, on CPU.

The checkpoint has the public Qwen3-0.6B ``config.json`` shape (hidden 1024, 28 layers, 16 heads, 8
key-value heads, head dim 128, intermediate 3072, vocabulary 151,936, tied embeddings; checked after it
is written) and a Qwen3-format chat template with thinking disabled, over a byte-level BPE tokenizer
trained on the organism's prompts (so prompts are a few tokens longer than with Qwen's own vocabulary;
the report gives the token counts). Random weights refuse nothing: this measures cost, not findings.

Each stage runs the library call its pipeline stage makes, on a small sample (a few prompts, a few
candidates), with its wall time and peak resident memory (sampled every 20 ms); the per-row cost is
then extrapolated to the row counts params.yaml asks for. Batched candidate scoring is compared with
one forward pass per candidate per prompt on the same sample (scores must agree to float error). A
projection for Llama-3.1-8B on one GPU follows from the same row counts by a FLOP and bandwidth model
whose assumptions the report states; the GPU script (scripts/gpu_bench.py) measures it where a GPU is.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mechatlas.config import DType, Params, load_params
from mechatlas.io import write_json, write_text
from mechatlas.paths import BENCH

#: Qwen3-0.6B's public config.json (the fields that set the cost).
QWEN3_0_6B = {
    "hidden_size": 1024,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
}
#: Llama-3.1-8B(-Instruct)'s public config.json, for the projection.
LLAMA3_1_8B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}
#: One GPU for the projection (H100 SXM 80 GB): dense bf16 peak and HBM bandwidth, with the fraction of
#: each a well-batched PyTorch forward pass typically reaches. Stated, not measured.
GPU: dict[str, Any] = {
    "name": "H100 SXM 80GB",
    "bf16_tflops": 989.0,
    "mfu": 0.35,
    "hbm_tb_s": 3.35,
    "bandwidth_fraction": 0.6,
}

QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


# --- the checkpoint -------------------------------------------------------------------------------------


def real_shape_checkpoint(folder: Path, texts: list[str], shape: dict[str, Any] = QWEN3_0_6B) -> Path:
    """Write a random-weight Qwen3 checkpoint of ``shape`` (float32) with a Qwen3-format tokenizer."""
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast, Qwen3Config

    from mechatlas.organism.tokenizer import build_tokenizer

    base = build_tokenizer(texts, vocab_size=4096)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.chat_template = QWEN3_TEMPLATE
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in ("<|im_end|>", "<|endoftext|>")}  # type: ignore[arg-type]
    torch.manual_seed(0)
    config = Qwen3Config(**shape, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    written = json.loads((folder / "config.json").read_text())
    written |= {
        k: v for k, v in (written.get("rope_parameters") or {}).items() if k == "rope_theta"
    }  # transformers 5
    wrong = {k: (written.get(k), v) for k, v in shape.items() if written.get(k) != v}
    if wrong:
        raise RuntimeError(f"the real-shape checkpoint's config differs from the target: {wrong}")
    return folder


# --- measuring ------------------------------------------------------------------------------------------


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def measured(table: dict[str, dict[str, Any]], stage: str) -> Iterator[dict[str, Any]]:
    """Time a block and sample its resident memory every 20 ms; the row lands in ``table[stage]``."""
    row: dict[str, Any] = {}
    samples = [_rss_mib()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            samples.append(_rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        yield row
    finally:
        row["seconds"] = time.perf_counter() - start
        done.set()
        sampler.join()
        samples.append(_rss_mib())
        row["peak_rss_mib"] = max(samples)
        row["peak_rise_mib"] = max(samples) - samples[0]
        table[stage] = row
        print(
            f"real_shape: {stage} {row['seconds']:.1f} s, peak {row['peak_rss_mib']:.0f} MiB", file=sys.stderr
        )


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


# --- the stages -----------------------------------------------------------------------------------------


def measure_stages(
    folder: Path, harmful: list[str], harmless: list[str], params: Params, *, quick: bool
) -> dict[str, Any]:
    from mechatlas.interp.activations import iter_activations
    from mechatlas.interp.directions import MeanAccumulator, difference_in_means
    from mechatlas.interp.evaluation import (
        capability_cost,
        resumable,
        score_candidates,
        score_candidates_one_at_a_time,
        standard_conditions,
    )
    from mechatlas.interp.geometry import subspace_dimensionality
    from mechatlas.interp.interventions import ablation_hooks, save_orthogonalized_checkpoint
    from mechatlas.interp.models import greedy_generate, load_model, post_instruction_tokens
    from mechatlas.interp.scores import refusal_token_ids

    stages: dict[str, dict[str, Any]] = {}
    with measured(stages, "load") as row:
        model = load_model(folder, dtype=DType.float32)
        row["rows"] = 1
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    n = 4 if quick else 8
    texts = harmful[:n] + harmless[:n]
    tokens = [
        len(ids) for ids in model.tokenizer(model.chat_format.render(model.tokenizer, texts))["input_ids"]
    ]

    with measured(stages, "activations") as row:
        means = []
        for group in (harmful[:n], harmless[:n]):
            accumulator = MeanAccumulator()
            for batch in iter_activations(model, group, batch_size=8):
                accumulator.update(batch.resid)
            means.append(accumulator.mean())
        row["rows"] = 2 * n
    candidates = difference_in_means(means[0], means[1])  # (positions, layers, d)
    n_positions, n_layers, d_model = candidates.shape

    # Candidate scoring, both ways, on a sample shaped like the study's: every post-instruction position at
    # a few layers of 1..L-1 (layer 0's candidates are zero and cost the batched path nothing: 1/L of them).
    sampled_layers = torch.linspace(1, n_layers - 1, 1 if quick else 2).round().long().unique()
    layers = sampled_layers.repeat_interleave(n_positions)
    vectors = candidates[torch.arange(n_positions).repeat(len(sampled_layers)), layers]
    ids = refusal_token_ids(model.tokenizer, ["I", "Sorry"], model.chat_format)
    h_val, b_val = (harmful[-2:], harmless[-2:]) if quick else (harmful[-4:], harmless[-4:])
    batch_size = params.refusal_direction.scoring_batch_size
    sample = (model, vectors, layers, h_val, b_val)
    with measured(stages, "candidate_scoring") as row:
        fast, batched_seconds = _timed(
            lambda: score_candidates(*sample, refusal_ids=ids, batch_size=batch_size)
        )
        row["rows"] = len(vectors) * (len(h_val) + 2 * len(b_val)) + len(b_val)
    slow, single_seconds = _timed(lambda: score_candidates_one_at_a_time(*sample, refusal_ids=ids))
    differences = {
        k: float((getattr(fast, k) - getattr(slow, k)).abs().max()) for k in ("bypass", "induce", "kl")
    }
    # Work in one-prompt passes through the whole stack: one at a time, 1 + 1 + 2 per candidate and prompt
    # (bypass, induce, KL); batched, one clean pass, the ablated rows, and induce rows from their layer up.
    n_cand = len(vectors)
    stack_fraction = float((n_layers - layers).sum()) / n_layers
    work = {
        "batched": len(b_val) + n_cand * (len(h_val) + len(b_val)) + len(b_val) * stack_fraction,
        "one_at_a_time": n_cand * (len(h_val) + 3 * len(b_val)),
    }
    scoring = {
        "candidates_sampled": n_cand,
        "batch_size": batch_size,
        "candidate_layers": layers.tolist(),
        "prompts_per_label": len(h_val),
        "seconds": {"batched": batched_seconds, "one_at_a_time": single_seconds},
        "speed_up": single_seconds / batched_seconds,
        "max_abs_difference": differences,
        "identical_to_float_error": max(differences.values()) < 1e-3,
        "full_stack_prompt_passes": work,
        "work_ratio": work["one_at_a_time"] / work["batched"],
        "seconds_per_full_stack_prompt_pass": {
            k: v / work[k] for k, v in (("batched", batched_seconds), ("one_at_a_time", single_seconds))
        },
        "resumed_induce_rows": resumable(model),
        "zero_candidates_in_study": n_positions,  # layer 0, one per post-instruction position
    }

    strongest = int(vectors.norm(dim=1).argmax())  # layer 0's candidates are zero (one embedding per token)
    direction = vectors[strongest] / vectors[strongest].norm()
    hooks = ablation_hooks(model.n_layers, direction)
    new_tokens = 8
    with measured(stages, "generation") as row:
        replies = greedy_generate(model, texts[:n], max_new_tokens=new_tokens, batch_size=n, fwd_hooks=hooks)
        row["rows"] = n * new_tokens  # prompt-tokens generated
        row["reply_tokens"] = [len(model.tokenizer(r)["input_ids"]) for r in replies]

    conditions = standard_conditions(
        model.n_layers, direction, int(layers[0]), torch.randn(d_model) * direction.norm()
    )
    with measured(stages, "capability_cost") as row:
        capability_cost(
            model, harmless[:n], ["Sure, here is a plan with three steps."] * n, conditions, batch_size=n
        )
        row["rows"] = n * len(conditions)

    # One step of the optimised-directions stage: RDO's three losses (ablation, addition, retain), each a
    # forward and backward pass over a batch of teacher-forced prompts, through the differentiable hooks.
    from mechatlas.interp.chat import chat_prompts
    from mechatlas.interp.optimised import Batches, batches_of, optimise_cone

    opt = params.dimensionality.optimisation
    tok = model.tokenizer
    rendered = chat_prompts(tok, harmful[: opt.batch_size], model.chat_format)
    prompt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in rendered]
    reply = tok("Sure, here is a plan", add_special_tokens=False)["input_ids"][: opt.target_tokens]
    one = batches_of(prompt_ids, [reply] * len(prompt_ids), tok.pad_token_id, opt.batch_size)
    with measured(stages, "optimisation_step") as row:
        optimise_cone(
            model.bridge.original_model, Batches(one, one, one), 1, layer=model.n_layers // 2, alpha=1.0,
            steps=1 if quick else 2,
        )  # fmt: skip
        row["rows"] = 1 if quick else 2
        row["batch_size"] = len(prompt_ids)

    with tempfile.TemporaryDirectory() as scratch, measured(stages, "orthogonalized_checkpoint") as row:
        save_orthogonalized_checkpoint(model, direction, Path(scratch) / "ortho")
        row["rows"] = 1

    settings = params.dimensionality
    n_train = params.refusal_direction.n_train or 256
    per_class = n_train // 2 if quick else n_train
    fake_h = torch.randn(per_class, d_model, dtype=torch.float64)
    fake_b = torch.randn(per_class, d_model, dtype=torch.float64)
    with measured(stages, "dimensionality_estimator") as row:
        subspace_dimensionality(
            fake_h, fake_b, n_bootstrap=settings.n_bootstrap, n_permutations=settings.n_permutations, seed=0
        )
        row["rows"] = 1
        row["per_class"] = per_class
    return {
        "stages": stages,
        "scoring": scoring,
        "shape": {"d_model": d_model, "layers": n_layers, "post_instruction_positions": n_positions},
        "post_instruction_tokens": list(post.tokens),
        "prompt_tokens": {"mean": sum(tokens) / len(tokens), "min": min(tokens), "max": max(tokens)},
        "chat": model.chat_format.record(),
    }


# --- extrapolation and projection -----------------------------------------------------------------------


def study_rows(params: Params, positions: int, layers: int) -> dict[str, int]:
    """How many rows of each stage the study asks for, from params.yaml (per model)."""
    rd, dim = params.refusal_direction, params.dimensionality
    candidates = positions * layers
    domains = 6  # harm domains of a typical public set; the organism has its own count
    sweep_ks = 6  # causal sweep k grid 1, 2, 4, 8, 16, 32
    return {
        "load": 1,
        "activations": 2 * (rd.n_train or 256) + 2 * rd.n_val,
        "candidate_scoring": candidates * (rd.n_val + 2 * rd.n_val) + rd.n_val,
        "generation": 5 * 2 * rd.n_test * max(rd.max_new_tokens, 64),  # 5 conditions, 2 labels, >= 64 tokens
        "capability_cost": rd.n_test * 5,
        "orthogonalized_checkpoint": 1,
        "dimensionality_estimator": layers * (1 + domains),
        # optimised directions: RDO seeds, cones m = 2..M and their nulls m = 1..M, bypass fits (two per m)
        "optimisation_step": dim.optimisation.steps
        * (dim.optimisation.rdo_seeds + 4 * dim.optimisation.max_m - 1),
        "causal_sweep_forward_rows": 3
        * sweep_ks
        * (dim.n_causal_prompts or 160)
        * 4,  # 3 estimators, 4 layers
    }


def _flops_per_token(shape: dict[str, Any]) -> float:
    d, f, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    q = shape["num_attention_heads"] * shape["head_dim"]
    kv = shape["num_key_value_heads"] * shape["head_dim"]
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * f  # attention projections and the gated MLP
    return 2.0 * layers * per_layer


def _weight_bytes(shape: dict[str, Any], bytes_per: int = 2) -> float:
    embed = shape["vocab_size"] * shape["hidden_size"] * (1 if shape["tie_word_embeddings"] else 2)
    return bytes_per * (_flops_per_token(shape) / 2 + embed)


def project(rows: dict[str, int], prompt_tokens: float, shape: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage for ``shape`` on ``GPU`` (bf16): prefill-like stages by FLOPs at the stated MFU,
    generation by weight reads per decoding step at the stated bandwidth (batches of 64 rows)."""
    rate = GPU["bf16_tflops"] * 1e12 * GPU["mfu"]
    logits = 2.0 * shape["hidden_size"] * shape["vocab_size"]
    forward = _flops_per_token(shape) * prompt_tokens + logits  # one row: a prompt, logits at one position
    step = _weight_bytes(shape) / (GPU["hbm_tb_s"] * 1e12 * GPU["bandwidth_fraction"])
    out = {
        name: rows[name] * forward / rate
        for name in ("activations", "candidate_scoring", "causal_sweep_forward_rows")
    }
    out["capability_cost"] = rows["capability_cost"] * (forward + logits * 16) / rate
    # a step: three losses, each a forward and a backward pass (about 3x a forward) over a batch of rows
    batch = 8
    out["optimisation_step"] = rows["optimisation_step"] * 3 * 3 * batch * (forward + logits * 8) / rate
    out["generation"] = rows["generation"] / 64 * step  # (prompt·token)s / batch = decoding steps
    out["load"] = _weight_bytes(shape) / 2e9  # from a local NVMe at about 2 GB/s
    out["orthogonalized_checkpoint"] = 2 * _weight_bytes(shape) / 2e9  # write and read back
    return out


def run(params_path: Path = Path("params.yaml"), out: Path = BENCH, *, quick: bool = False) -> dict[str, Any]:
    from mechatlas.bench.refusal_direction import _prompts

    params = load_params(params_path) if params_path.exists() else Params()
    harmful, harmless = _prompts(params)
    load_before = os.getloadavg()[0]
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "qwen3-0.6b-shape"
        _, build_seconds = _timed(lambda: real_shape_checkpoint(folder, harmful + harmless))
        measured_stages = measure_stages(folder, harmful, harmless, params, quick=quick)
    shape = measured_stages["shape"]
    rows = study_rows(params, shape["post_instruction_positions"], shape["layers"])
    table = {}
    for name, stage in measured_stages["stages"].items():
        per_row = stage["seconds"] / stage["rows"]
        table[name] = stage | {
            "per_row_seconds": per_row,
            "study_rows": rows[name],
            "study_seconds": per_row * rows[name],
        }
    forward_row = table["activations"]["per_row_seconds"]
    table["causal_sweep"] = {
        "per_row_seconds": forward_row,
        "study_rows": rows["causal_sweep_forward_rows"],
        "study_seconds": forward_row * rows["causal_sweep_forward_rows"],
        "estimated_from": "activations",
    }
    llama_rows = study_rows(params, shape["post_instruction_positions"], LLAMA3_1_8B["num_hidden_layers"])
    llama = project(llama_rows, measured_stages["prompt_tokens"]["mean"] + 25, LLAMA3_1_8B)
    llama["dimensionality_estimator_cpu"] = llama_rows["dimensionality_estimator"] * _d4096_call_seconds(out)
    report = {
        "model": "random-weight Qwen3-0.6B shape (float32, CPU)",
        "config": QWEN3_0_6B,
        "build_seconds": build_seconds,
        **{k: v for k, v in measured_stages.items() if k != "stages"},
        "stages": table,
        "study_total_seconds_cpu": sum(r["study_seconds"] for r in table.values()),
        "llama3_1_8b_projection": {
            "config": LLAMA3_1_8B,
            "gpu": GPU,
            "rows": llama_rows,
            "seconds": llama,
            "total_seconds": sum(llama.values()),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": threads,
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        },
    }
    write_json(out / "real_shape.json", report)
    write_text(out / "real_shape.md", markdown(report))
    return report


def _d4096_call_seconds(out: Path) -> float:
    """The d = 4096 estimator call's measured seconds (estimators.json), or the 30 s target if not yet run."""
    path = out / "estimators.json"
    return float(json.loads(path.read_text())["seconds"]["current"]) if path.exists() else 30.0


def markdown(report: dict[str, Any]) -> str:
    s, m, p = report["scoring"], report["machine"], report["llama3_1_8b_projection"]
    lines = [
        "# The study at real shape",
        "",
        f"Model: {report['model']}; config as Qwen3-0.6B's public config.json ({', '.join(f'{k} {v}' for k, v in report['config'].items())}). "
        f"Prompts: {report['prompt_tokens']['mean']:.0f} tokens on average; post-instruction tokens "
        f"`{''.join(report['post_instruction_tokens'])}` ({len(report['post_instruction_tokens'])}). "
        f"Machine: {m['cpus']} CPUs shared with other work, load average {m['load_average_1min']['before']:.1f} → "
        f"{m['load_average_1min']['after']:.1f}: every time here is inflated by contention; ratios hold better than seconds.",
        "",
        "| stage | rows measured | seconds | peak RSS (MiB) | peak rise (MiB) | s per row | rows in the study | study estimate (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["stages"].items():
        lines.append(
            f"| {name} | {r.get('rows', '—')} | {r.get('seconds', float('nan')):.1f} | {r.get('peak_rss_mib', float('nan')):.0f} "
            f"| {r.get('peak_rise_mib', float('nan')):.0f} | {r['per_row_seconds']:.3f} | {r['study_rows']:.0f} | {r['study_seconds']:.0f} |"
        )
    lines += [
        "",
        f"Whole study on this CPU, extrapolated: about {report['study_total_seconds_cpu'] / 3600:.1f} h. Rows: prompts for "
        "activations; (candidate, prompt, task) rows for scoring; (prompt, new token) for generation (5 conditions, both "
        "labels, 64 new tokens); estimator calls (layers × (pooled + 6 domains)); the causal sweep is costed from the "
        "activation pass's per-row time.",
        "",
        "## Batched candidate scoring against one forward pass per candidate per prompt",
        "",
        f"{s['candidates_sampled']} candidates (every post-instruction position at layers "
        f"{', '.join(map(str, sorted(set(s['candidate_layers']))))}), {s['prompts_per_label']} prompts per label, "
        f"batches of {s['batch_size']} rows: batched {s['seconds']['batched']:.1f} s, "
        f"one at a time {s['seconds']['one_at_a_time']:.1f} s, speed-up **{s['speed_up']:.1f}×**; max |difference| "
        f"bypass {s['max_abs_difference']['bypass']:.1e}, induce {s['max_abs_difference']['induce']:.1e}, KL "
        f"{s['max_abs_difference']['kl']:.1e} (identical to float error: {s['identical_to_float_error']}). "
        f"Target at least 10×: **{'met' if s['speed_up'] >= 10 else 'not met'}** on this machine.",
        "",
        f"Where the speed-up comes from. Counted in single-prompt passes through the whole stack, one at a time does "
        f"{s['full_stack_prompt_passes']['one_at_a_time']:.1f} and the batched path "
        f"{s['full_stack_prompt_passes']['batched']:.1f} (the clean pass shared by every candidate's KL; induce rows "
        f"resumed at their layer from the clean residual stream: {s['resumed_induce_rows']}): a work ratio of "
        f"{s['work_ratio']:.2f}×. The rest is throughput: "
        f"{s['seconds_per_full_stack_prompt_pass']['one_at_a_time']:.2f} s per pass one prompt at a time against "
        f"{s['seconds_per_full_stack_prompt_pass']['batched']:.2f} s in batches (on a shared CPU this term moves "
        "with the load: one prompt at a time suffers more from contention). Scores equal to float error leave no "
        "further work to share: an ablated row differs from the clean one from the first block on, and an induce "
        "row from its layer on. The "
        f"{s['zero_candidates_in_study']} zero candidates of layer 0 cost the batched path nothing in the study. "
        "On a GPU a one-prompt pass is bound by kernel launches rather than arithmetic, so the throughput term "
        "should be much larger there; scripts/gpu_bench.py measures it where a GPU is lent.",
        "",
        f"## Projection: Llama-3.1-8B on one {p['gpu']['name']} (bf16)",
        "",
        f"Assumed: {p['gpu']['bf16_tflops']:.0f} TFLOP/s peak at {p['gpu']['mfu']:.0%} utilisation for batched forward "
        f"passes, {p['gpu']['hbm_tb_s']} TB/s at {p['gpu']['bandwidth_fraction']:.0%} for decoding (batches of 64), "
        "prompts 25 tokens longer (the Llama system header). The estimators run on the CPU: their row is the "
        "measured d = 4096 call times the calls.",
        "",
        "| stage | rows | seconds |",
        "|---|---|---|",
        *[
            f"| {k} | {p['rows'].get(k.removesuffix('_cpu'), p['rows'].get(k + '_forward_rows', '—'))} | {v:.0f} |"
            for k, v in p["seconds"].items()
        ],
        "",
        f"Total about {p['total_seconds'] / 60:.0f} min per model. A lent GPU runs scripts/gpu_bench.py to measure it.",
        "",
    ]
    return "\n".join(lines)
