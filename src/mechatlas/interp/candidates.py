"""Scoring candidate refusal directions (Arditi et al. 2024, Appendix C): bypass, induce and KL.

Each candidate direction is scored on validation prompts three ways: the refusal score of harmful prompts
with it ablated everywhere (bypass), of harmless prompts with it added at its layer (induce), and the KL
divergence it causes on harmless prompts when ablated. ``score_candidates`` batches many candidates per
forward pass and shares the candidate-independent work; ``score_candidates_one_at_a_time`` is the
reference it must equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechatlas.interp.hooks import Hook
from mechatlas.interp.interventions import (
    ablation_hooks,
    addition_hooks,
    row_ablation_hooks,
    row_addition_hooks,
)
from mechatlas.interp.models import LoadedModel, encode_prompts
from mechatlas.interp.scores import forward_last_logits, kl_divergence, last_logits, refusal_score


@dataclass(frozen=True)
class CandidateScores:
    """Per candidate: refusal score with it ablated on harmful prompts (bypass), with it added on harmless
    prompts (induce), and the KL it causes on harmless prompts when ablated; each a mean over prompts."""

    bypass: Float[Tensor, " cand"]
    induce: Float[Tensor, " cand"]
    kl: Float[Tensor, " cand"]


@torch.inference_mode()
def score_candidates(
    model: LoadedModel,
    vectors: Float[Tensor, "cand d_model"],
    layers: Int[Tensor, " cand"],
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    refusal_ids: Sequence[int],
    coefficient: float = 1.0,
    batch_size: int = 128,
    progress: bool = False,
) -> CandidateScores:
    """Bypass, induce and KL scores of every candidate, many candidates per forward pass.

    Every (candidate, prompt, task) triple is one batch row: the prompts are repeated once per
    candidate, and each row carries its own ablation direction (bypass and KL rows) or its own addition
    vector and layer (induce rows). Rows are cut into batches of ``batch_size`` regardless of which
    candidate they belong to, so a forward pass serves several candidates. The result equals scoring
    each candidate on each prompt alone (``score_candidates_one_at_a_time``, to float error).

    Work that does not depend on the candidate is done once:

    - one clean pass over the harmless prompts gives the KL baseline; zero-length candidates (layer 0's
      differences of identical template tokens) get no rows, since ablating or adding nothing leaves the
      clean scores (the clean pass then covers the harmful prompts too);
    - an induce row is clean below its addition layer, so for decoder stacks that can be resumed
      (``resumable``) the clean pass keeps the residual stream entering each candidate layer, and each
      batch of induce rows (one layer per batch) runs only the blocks from that layer up: about half
      the stack on average over a study's candidates.
    """
    from tqdm.auto import tqdm

    n_cand, n_harmful, n_harmless = vectors.shape[0], len(harmful), len(harmless)
    prompts = encode_prompts(model, list(harmful) + list(harmless))
    nonzero = vectors.to(torch.float64).norm(dim=1) > 0
    live = nonzero.nonzero().flatten()
    resume = resumable(model)
    start_layers = sorted(set(layers[live].tolist())) if resume else []
    # harmful prompts enter the clean pass only where a zero candidate needs their unablated scores
    clean = torch.arange(0 if len(live) < n_cand else n_harmful, n_harmful + n_harmless)
    clean_logits, clean_resid = _clean_pass(model, prompts, clean, n_harmful, start_layers, batch_size)
    clean_scores = refusal_score(clean_logits, refusal_ids)
    base_logits = clean_logits[-n_harmless:] if n_harmless else clean_logits[:0]

    # Row table: (prompt index into `prompts`, candidate, task); task 0 bypass, 1 kl, 2 induce. Rows are
    # ordered by prompt length, so a batch holds prompts of about one length and little padding.
    length = prompts["attention_mask"].sum(dim=1).cpu()
    harmful_idx, harmless_idx = torch.arange(n_harmful), n_harmful + torch.arange(n_harmless)
    ablation_rows = _by_length(
        torch.cat([_grid(live, harmful_idx, task=0), _grid(live, harmless_idx, task=1)]), length
    )
    induce_rows = _by_length(_grid(live, harmless_idx, task=2), length)
    if resume:  # by layer, so each batch starts as high in the stack as its rows allow
        induce_rows = induce_rows[torch.argsort(layers[induce_rows[:, 1]], stable=True)]
    rows = torch.cat([ablation_rows, induce_rows])
    refusal = torch.empty(len(rows))
    kl = torch.full((len(rows),), float("nan"))
    # batches of at most batch_size rows; induce batches of resumed stacks hold one start layer each
    ends = [len(ablation_rows)]
    if resume and len(induce_rows):
        changes = (layers[induce_rows[1:, 1]] != layers[induce_rows[:-1, 1]]).nonzero().flatten() + 1
        ends += [len(ablation_rows) + int(i) for i in changes]
    ends.append(len(rows))
    spans = [
        (start, min(start + batch_size, end))
        for begin, end in zip([0, *ends[:-1]], ends, strict=True)
        for start in range(begin, end, batch_size)
    ]
    for start, stop in tqdm(spans, desc="scoring candidates", disable=not progress, unit="batch"):
        chunk = rows[start:stop]
        prompt, candidate, task = chunk.unbind(dim=1)
        if start < len(ablation_rows):
            hooks = row_ablation_hooks(model.n_layers, vectors[candidate])
            logits = forward_last_logits(model, _take_rows(prompts, prompt), hooks).cpu()
        else:
            add_layers = layers[candidate]
            first = int(add_layers.min()) if resume else 0
            hooks = row_addition_hooks(vectors[candidate], add_layers, model.n_layers, coefficient)
            if resume:
                logits = resumed_last_logits(
                    model, _take_rows(prompts, prompt), clean_resid[first][prompt - n_harmful], first, hooks
                ).cpu()
            else:
                logits = forward_last_logits(model, _take_rows(prompts, prompt), hooks).cpu()
        refusal[start:stop] = refusal_score(logits, refusal_ids)
        is_kl = task == 1
        if is_kl.any():
            kl[start:stop][is_kl] = kl_divergence(base_logits[prompt[is_kl] - n_harmful], logits[is_kl])
    # zero candidates: ablating or adding nothing leaves the clean scores (their rows were never built)
    n_clean_harmful = len(clean) - n_harmless  # 0 when every candidate has rows of its own
    bypass = torch.full((n_cand,), float(clean_scores[:n_clean_harmful].mean()) if n_clean_harmful else 0.0)
    induce = torch.full((n_cand,), float(clean_scores[n_clean_harmful:].mean()) if n_harmless else 0.0)
    kl_score = torch.zeros(n_cand)
    task = rows[:, 2]
    for target, values, t in ((bypass, refusal, 0), (kl_score, kl, 1), (induce, refusal, 2)):
        picked, of = values[task == t], rows[task == t, 1]
        sums = torch.zeros(n_cand, dtype=torch.float64).index_add_(0, of, picked.double())
        counts = torch.zeros(n_cand).index_add_(0, of, torch.ones(len(of)))
        target[live] = (sums[live] / counts[live]).float()
    return CandidateScores(bypass=bypass, induce=induce, kl=kl_score)


#: Decoder stacks whose Hugging Face forward feeds ``inputs_embeds`` unchanged to the first block and
#: gives every block the same mask kind, so running a slice of the blocks resumes the stack exactly.
#: (Gemma scales the embeddings inside its forward and alternates sliding-window layers: not resumable.)
RESUMABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def resumable(model: LoadedModel) -> bool:
    """Whether ``resumed_last_logits`` can start this model's forward pass at a given block."""
    hf = model.bridge.original_model
    config, inner = hf.config, getattr(hf, "model", None)
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    blocks = getattr(inner, "layers", None)
    return (
        config.model_type in RESUMABLE_MODEL_TYPES
        and isinstance(blocks, torch.nn.ModuleList)
        and len(blocks) == model.n_layers
        and layer_types == {"full_attention"}
        and not getattr(inner, "has_sliding_layers", False)
    )


def _clean_pass(
    model: LoadedModel,
    prompts: dict[str, Tensor],
    which: Tensor,
    n_harmful: int,
    keep_layers: Sequence[int],
    batch_size: int,
) -> tuple[Float[Tensor, "n vocab"], dict[int, Tensor]]:
    """Unhooked last-position logits of the prompts ``which`` (CPU, float32), and for the harmless ones
    (rows ``n_harmful:``) the residual stream entering each of ``keep_layers`` (on the model's device),
    indexed from the first harmless prompt."""
    logits: list[Tensor] = []
    kept: dict[int, list[Tensor]] = {layer: [] for layer in keep_layers}
    store: list[Tensor] = []

    def keep(x: Tensor, hook: Any) -> Tensor:
        store.append(x)
        return x

    for start in range(0, len(which), batch_size):
        index = which[start : start + batch_size]
        harmless = index >= n_harmful
        hooks = [(f"blocks.{layer}.hook_resid_pre", keep) for layer in keep_layers] if harmless.any() else []
        store.clear()
        batch = {k: v.index_select(0, index.to(v.device)) for k, v in prompts.items()}  # full width
        logits.append(forward_last_logits(model, batch, hooks).cpu())
        for layer, x in zip(keep_layers, store, strict=bool(hooks)):
            kept[layer].append(x[harmless.to(x.device)].clone())
    resid = {layer: torch.cat(parts) for layer, parts in kept.items()}
    return (torch.cat(logits) if logits else torch.empty(0, model.bridge.cfg.d_vocab)), resid


@torch.inference_mode()
def resumed_last_logits(
    model: LoadedModel,
    batch: dict[str, Tensor],
    resid: Float[Tensor, "batch full_seq d_model"],
    layer: int,
    fwd_hooks: Sequence[Hook] = (),
) -> Float[Tensor, "batch vocab"]:
    """Last-position logits of ``batch`` with the stack started at block ``layer`` from ``resid``, the
    residual stream entering it (its right-aligned columns match ``batch``'s left-padded ones).

    Only for ``resumable`` models: the blocks below ``layer`` are not run at all. ``fwd_hooks`` on
    blocks at or above ``layer`` apply as in a full forward pass.
    """
    hf = model.bridge.original_model
    blocks = hf.model.layers
    width = batch["input_ids"].shape[1]
    hf.model.layers = torch.nn.ModuleList(list(blocks)[layer:])
    try:
        with model.bridge.hooks(fwd_hooks=list(fwd_hooks)):
            out = hf(
                inputs_embeds=resid[:, -width:],
                attention_mask=batch["attention_mask"],
                logits_to_keep=1,
                use_cache=False,
            )
    finally:
        hf.model.layers = blocks
    return out.logits[:, -1, :].float()


def _grid(candidates: Tensor, prompts: Tensor, task: int) -> Tensor:
    c, p = torch.meshgrid(candidates, prompts, indexing="ij")  # candidate-major
    return torch.stack([p.flatten(), c.flatten(), torch.full((c.numel(),), task)], dim=1)


def _by_length(rows: Tensor, length: Tensor) -> Tensor:
    """``rows`` ordered by the token length of their prompt (stable, so ties keep their order)."""
    return rows[torch.argsort(length[rows[:, 0]], stable=True)]


def _take_rows(batch: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    """Rows ``index`` of a left-padded batch, with the columns that are padding in every row dropped."""
    index = index.to(batch["input_ids"].device)
    rows = {k: v.index_select(0, index) for k, v in batch.items()}
    first_real = int((rows["attention_mask"].sum(dim=0) > 0).nonzero()[0])
    return {k: v[:, first_real:] for k, v in rows.items()}


@torch.inference_mode()
def score_candidates_one_at_a_time(
    model: LoadedModel,
    vectors: Float[Tensor, "cand d_model"],
    layers: Int[Tensor, " cand"],
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    refusal_ids: Sequence[int],
    coefficient: float = 1.0,
) -> CandidateScores:
    """The reference: one forward pass per candidate per prompt, with the shared-direction hooks."""
    bypass, induce, kl = [], [], []
    for vector, layer in zip(vectors, layers.tolist(), strict=True):
        ablate = ablation_hooks(model.n_layers, vector) if vector.norm() > 0 else []  # a zero vector: no-op
        add = addition_hooks(vector, layer, coefficient)
        bypass.append(
            torch.stack([refusal_score(last_logits(model, [t], ablate), refusal_ids)[0] for t in harmful])
        )
        induce.append(
            torch.stack([refusal_score(last_logits(model, [t], add), refusal_ids)[0] for t in harmless])
        )
        kl.append(
            torch.stack(
                [kl_divergence(last_logits(model, [t]), last_logits(model, [t], ablate))[0] for t in harmless]
            )
        )
    return CandidateScores(
        bypass=torch.stack(bypass).mean(dim=1),
        induce=torch.stack(induce).mean(dim=1),
        kl=torch.stack(kl).mean(dim=1),
    )
