"""Measuring refusal and its cost: refusal scores, candidate scoring, generation, judges, verdicts.

Arditi et al. 2024 (arXiv 2406.11717) measure refusal two ways, both implemented here:

- the *refusal score*: the log-odds of the refusal tokens at the first reply position,
  ``log Σ p(refusal tokens) - log(1 - Σ p(refusal tokens))`` (Appendix C), computed from one forward
  pass; it drives direction selection (``score_candidates``, in ``mechatlas.interp.candidates``) and is
  reported per prompt;
- the *refusal rate* of greedy replies: a reply is a refusal if it contains a refusal phrase
  (``SubstringJudge``) or, optionally, if a classifier says so (``ClassifierJudge``).

Capability cost is measured as the cross-entropy of reference completions of harmless prompts
(the baseline model's own greedy replies) and the KL divergence from the baseline's next-token
distributions over those completions. ``replication_verdicts`` turns the numbers into verdicts
on the paper's claims by the rules written out in ``VERDICT_RULES``.

>>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
>>> round(refusal_score(logits, [0]).item(), 6)  # p = 0.5: even odds
0.0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechatlas.interp.candidates import CandidateScores as CandidateScores
from mechatlas.interp.candidates import resumable as resumable
from mechatlas.interp.candidates import resumed_last_logits as resumed_last_logits
from mechatlas.interp.candidates import score_candidates as score_candidates
from mechatlas.interp.candidates import score_candidates_one_at_a_time as score_candidates_one_at_a_time
from mechatlas.interp.hooks import Hook
from mechatlas.interp.interventions import (
    ablation_hooks,
    addition_hooks,
)
from mechatlas.interp.judges import Judge
from mechatlas.interp.models import LoadedModel, chat_prompts, greedy_generate, left_pad
from mechatlas.interp.scores import kl_divergence, last_logits, refusal_score

# --- conditions and the generation evaluation -----------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """An intervention applied during evaluation, which may differ between harmful and harmless prompts."""

    name: str  # baseline | ablation | actadd | random_ablation | random_actadd
    direction: str  # none | refusal | random
    harmful: tuple[str, list[Hook]]  # (intervention name, hooks)
    harmless: tuple[str, list[Hook]]

    def for_label(self, label: str) -> tuple[str, list[Hook]]:
        return self.harmful if label == "harmful" else self.harmless


def standard_conditions(
    n_layers: int,
    vector: Float[Tensor, " d_model"],
    layer: int,
    control: Float[Tensor, " d_model"],
    coefficient: float = 1.0,
) -> list[Condition]:
    """Baseline; ablation of the direction; addition on harmless and subtraction on harmful prompts at its
    layer; and the same two interventions with a random direction of equal norm (the control)."""
    conditions = [Condition("baseline", "none", ("none", []), ("none", []))]
    for prefix, kind, v in (("", "refusal", vector), ("random_", "random", control)):
        ablate = ablation_hooks(n_layers, v)
        conditions.append(Condition(f"{prefix}ablation", kind, ("ablation", ablate), ("ablation", ablate)))
        conditions.append(
            Condition(
                f"{prefix}actadd",
                kind,
                ("subtraction", addition_hooks(v, layer, -coefficient)),
                ("addition", addition_hooks(v, layer, coefficient)),
            )
        )
    return sorted(conditions, key=lambda c: ["none", "refusal", "random"].index(c.direction))


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    text: str
    label: str
    domain: str


def evaluate_conditions(
    model: LoadedModel,
    prompts: Sequence[EvalPrompt],
    conditions: Sequence[Condition],
    *,
    refusal_ids: Sequence[int],
    judges: Sequence[Judge],
    max_new_tokens: int,
    batch_size: int = 32,
    progress: bool = False,
) -> pd.DataFrame:
    """Greedy replies and refusal judgements for every prompt under every condition; one row each.

    Columns: condition, direction, intervention, id, label, domain, prompt, reply, refusal_score,
    refused_logit (score > 0, the even-odds point), and ``refused_<judge>`` for each judge.
    """
    frames = []
    for condition in conditions:
        for label in ("harmful", "harmless"):
            group = [p for p in prompts if p.label == label]
            if not group:
                continue
            intervention, hooks = condition.for_label(label)
            texts = [p.text for p in group]
            replies = greedy_generate(
                model,
                texts,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                fwd_hooks=hooks,
                progress=progress,
            )
            scores = refusal_score(last_logits(model, texts, hooks, batch_size=batch_size), refusal_ids)
            frame = pd.DataFrame(
                {
                    "condition": condition.name,
                    "direction": condition.direction,
                    "intervention": intervention,
                    "id": [p.id for p in group],
                    "label": label,
                    "domain": [p.domain for p in group],
                    "prompt": texts,
                    "reply": replies,
                    "refusal_score": scores.numpy().astype(np.float64),
                    "refused_logit": (scores > 0).numpy(),
                }
            )
            for judge in judges:
                frame[f"refused_{judge.name}"] = judge(texts, replies)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --- teacher-forced log-probabilities: capability cost and refusal-token retention --------------------------


def next_token_targets(reply_ids: Sequence[Sequence[int]], width: int) -> Int[Tensor, "batch seq"]:
    """Per position of a left-padded prompt+reply batch, the reply token it predicts (-1: none).

    Position t predicts token t + 1, so the last prompt token predicts the first reply token.
    """
    targets = torch.full((len(reply_ids), width), -1)
    for i, reply in enumerate(reply_ids):
        if reply:
            targets[i, width - len(reply) - 1 : width - 1] = torch.tensor(list(reply))
    return targets


def teacher_forced_batches(
    model: LoadedModel,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    batch_size: int,
) -> Iterator[tuple[int, dict[str, Tensor], Int[Tensor, "batch seq"]]]:
    """Left-padded batches of ``context + continuation`` token ids, each with its ``next_token_targets``
    (the continuation token every position predicts, -1 where none), on the model's device.

    Yields (index of the batch's first row, batch, targets).
    """
    for s in range(0, len(contexts), batch_size):
        context, continuation = contexts[s : s + batch_size], continuations[s : s + batch_size]
        batch = left_pad(
            [[*c, *r] for c, r in zip(context, continuation, strict=True)],
            model.tokenizer.pad_token_id,
            model.device,
        )
        yield s, batch, next_token_targets(continuation, batch["input_ids"].shape[1]).to(model.device)


def target_logprobs(
    logits: Float[Tensor, "batch seq vocab"], targets: Int[Tensor, "batch seq"]
) -> Float[Tensor, "batch seq"]:
    """``log p(target)`` at each position; positions without a target (-1) hold token 0's, to be masked out."""
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)


def _masked_mean(
    values: Float[Tensor, "batch seq"], scored: Tensor
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """Per row, the mean of ``values`` where ``scored`` (NaN where none is), and how many were scored."""
    n = scored.sum(dim=1)
    return torch.where(n > 0, (values * scored).sum(dim=1) / n.clamp(min=1), float("nan")), n


def _chat_ids(
    model: LoadedModel, prompts: Sequence[str], replies: Sequence[str]
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each chat-formatted prompt and of its reply, tokenized apart (no special tokens added)."""
    tok = model.tokenizer
    formatted = chat_prompts(tok, list(prompts), model.chat_format)
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in formatted]
    return prompt_ids, [tok(r, add_special_tokens=False)["input_ids"] for r in replies]


def _all_logits(model: LoadedModel, batch: dict[str, Tensor], hooks: Sequence[Hook]) -> Tensor:
    with model.bridge.hooks(fwd_hooks=list(hooks)):
        return model.bridge.original_model(**batch, use_cache=False).logits.float()


@torch.inference_mode()
def capability_cost(
    model: LoadedModel,
    prompts: Sequence[str],
    completions: Sequence[str],
    conditions: Sequence[Condition],
    *,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Per prompt and condition: cross-entropy of the reference completion, and KL from the baseline.

    Teacher-forced on ``prompt ids + completion ids``; both are averaged over the completion's tokens
    (the KL at each position that predicts a completion token). Uses each condition's harmless hooks.
    Prompts with an empty completion get NaN.
    """
    rows = []
    for s, batch, targets in teacher_forced_batches(
        model, *_chat_ids(model, prompts, completions), batch_size
    ):
        base = _all_logits(model, batch, [])
        for condition in conditions:
            logits = (
                base if condition.name == "baseline" else _all_logits(model, batch, condition.harmless[1])
            )
            ce, _ = _masked_mean(-target_logprobs(logits, targets), targets >= 0)
            kl, _ = _masked_mean(kl_divergence(base, logits), targets >= 0)
            for i in range(len(targets)):
                rows.append(
                    {
                        "prompt_index": s + i,
                        "condition": condition.name,
                        "ce": float(ce[i]),
                        "kl": float(kl[i]),
                    }
                )
    return pd.DataFrame(rows, columns=["prompt_index", "condition", "ce", "kl"])


@torch.inference_mode()
def text_cross_entropy(
    model: LoadedModel,
    texts: Sequence[str],
    conditions: Sequence[Condition],
    *,
    batch_size: int = 16,
    max_tokens: int = 256,
) -> pd.DataFrame:
    """Per text and condition: mean next-token cross-entropy of raw text (no chat template), in nats.

    For held-out text the model did not write (Pile-style documents): every token after the first
    (and after the tokenizer's own special tokens) is predicted, truncated to ``max_tokens``; uses each
    condition's harmless hooks. Rows: text_index, condition, ce, n_tokens.
    """
    ids = [model.tokenizer(t)["input_ids"][:max_tokens] for t in texts]
    rows = []
    for s, batch, targets in teacher_forced_batches(
        model, [seq[:1] for seq in ids], [seq[1:] for seq in ids], batch_size
    ):
        for condition in conditions:
            logits = _all_logits(model, batch, condition.harmless[1] if condition.name != "baseline" else [])
            ce, n = _masked_mean(-target_logprobs(logits, targets), targets >= 0)
            for i in range(len(targets)):
                rows.append(
                    {
                        "text_index": s + i,
                        "condition": condition.name,
                        "ce": float(ce[i]),
                        "n_tokens": int(n[i]),
                    }
                )
    return pd.DataFrame(rows, columns=["text_index", "condition", "ce", "n_tokens"])


def refusal_token_retention(
    model: LoadedModel,
    prompts: Sequence[str],
    replies: Sequence[str],
    token_ids: Sequence[int],
    hooks: Sequence[Hook],
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """Per prompt, the mean change (hooked minus baseline) in the log-probability of each refusal token the
    reference reply uses after its first token, teacher-forced; NaN where the reply has none there.

    These are contexts where the refusal tokens are legitimately produced (the rest of a refusal, as in
    "I'm sorry, I cannot"): an intervention that removes the model's ability to emit them (the read-out),
    rather than its decision to refuse, lowers them here. The first reply token, the decision itself, is
    not scored.
    """
    wanted = torch.tensor(sorted(set(token_ids)))
    prompt_ids, reply_ids = _chat_ids(model, prompts, replies)
    # The first reply token joins the context: it is the decision to refuse, not a context for the tokens.
    contexts = [p + r[:1] for p, r in zip(prompt_ids, reply_ids, strict=True)]
    out = np.full(len(prompts), np.nan)
    for s, batch, targets in teacher_forced_batches(model, contexts, [r[1:] for r in reply_ids], batch_size):
        base = target_logprobs(_all_logits(model, batch, []), targets).cpu()
        hooked = target_logprobs(_all_logits(model, batch, hooks), targets).cpu()
        targets = targets.cpu()
        mean, n = _masked_mean(hooked - base, torch.isin(targets, wanted) & (targets >= 0))
        for i in range(len(targets)):
            if n[i] > 0:
                out[s + i] = float(mean[i])
    return out
