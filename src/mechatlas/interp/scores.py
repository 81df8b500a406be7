"""Scores read from a model's next-token distribution: the refusal score and KL divergence.

Arditi et al. 2024 (arXiv 2406.11717, Appendix C) score refusal as the log-odds of the refusal tokens
at the first reply position, ``log Σ p(refusal tokens) - log(1 - Σ p(refusal tokens))``, from one forward
pass. ``kl_divergence`` measures how far an intervention moves a distribution (the side effect every
direction selection and capability check bounds). ``last_logits`` and ``forward_last_logits`` give the
first-reply-token logits of a batch, under hooks.

>>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
>>> round(refusal_score(logits, [0]).item(), 6)  # p = 0.5: even odds
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.errors import MechatlasError
from mechatlas.interp.hooks import Hook
from mechatlas.interp.models import ChatFormat, LoadedModel, chat_prompts, encode_prompts


@torch.inference_mode()
def forward_last_logits(
    model: LoadedModel, batch: dict[str, Tensor], fwd_hooks: Sequence[Hook] = ()
) -> Float[Tensor, "batch vocab"]:
    """Logits at the last position (the first reply token), in float32, under ``fwd_hooks``."""
    with model.bridge.hooks(fwd_hooks=list(fwd_hooks)):
        out = model.bridge.original_model(**batch, logits_to_keep=1, use_cache=False)
    return out.logits[:, -1, :].float()


# --- the refusal score ---------------------------------------------------------------------------------


def refusal_token_ids(
    tokenizer: Any, refusal_tokens: Sequence[str], chat: ChatFormat | None = None
) -> list[int]:
    """The first token a reply starting with each string would get, in context after the chat template.

    Tokenizing ``template + "Sorry"`` (not ``"Sorry"`` alone) gives the token the model actually
    predicts there, whatever the tokenizer does with leading spaces. Duplicates are dropped.
    """
    (prompt,) = chat_prompts(tokenizer, ["Hello"], chat)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    for text in refusal_tokens:
        full = tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
        if len(full) <= len(prompt_ids) or full[: len(prompt_ids)] != prompt_ids:
            raise MechatlasError(
                f"refusal token {text!r} does not tokenize as a continuation of the chat template; "
                "check `refusal_direction.refusal_tokens` in params.yaml"
            )
        if full[len(prompt_ids)] not in ids:
            ids.append(full[len(prompt_ids)])
    return ids


#: The reference code's clip (andyrdt/refusal_direction, ``select_direction.refusal_score``): the score is
#: ``log(p + ε) - log(1 - p + ε)``, so it lies within ±log(1/ε) ≈ ±18.4 and no single prompt dominates a mean.
REFUSAL_SCORE_EPSILON = 1e-8


def refusal_context_ids(tokenizer: Any, refusal_tokens: Sequence[str], first_ids: Sequence[int]) -> list[int]:
    """The refusal tokens as they appear inside a reply: the reply-initial ids (``first_ids``, from
    ``refusal_token_ids``) plus the first token of each string after a space (" I" in "sorry, I cannot")."""
    ids = list(dict.fromkeys(first_ids))
    for text in refusal_tokens:
        spaced = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        if spaced and not tokenizer.decode(spaced[:1]).strip():  # a bare space token comes first
            spaced = spaced[1:]
        if spaced and spaced[0] not in ids:
            ids.append(spaced[0])
    return ids


def refusal_score(
    logits: Float[Tensor, "batch vocab"], token_ids: Sequence[int], epsilon: float = REFUSAL_SCORE_EPSILON
) -> Float[Tensor, " batch"]:
    """Log-odds that the next token is a refusal token, ``log(p + ε) - log(1 - p + ε)`` with ``p = Σ p(refusal)``.

    As the reference code: float64 probabilities, the refusal mass and its complement each clipped
    through ``epsilon`` (1e-8), which bounds the score by ±log(1/ε). ``1 - p`` is the sum of the other
    tokens' probabilities (not one minus a rounded ``p``), so it does not lose its digits when ``p`` is
    close to 1. Returned in float32.
    """
    probs = torch.softmax(logits.double(), dim=-1)
    is_refusal = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    is_refusal[list(token_ids)] = True
    p = probs[:, is_refusal].sum(dim=-1)
    not_p = probs[:, ~is_refusal].sum(dim=-1)
    return (torch.log(p + epsilon) - torch.log(not_p + epsilon)).float()


def kl_divergence(
    base_logits: Float[Tensor, "*batch vocab"], other_logits: Float[Tensor, "*batch vocab"]
) -> Float[Tensor, "*batch"]:
    """``KL(p_base ‖ p_other)`` of the next-token distributions, in nats."""
    base = torch.log_softmax(base_logits.float(), dim=-1)
    other = torch.log_softmax(other_logits.float(), dim=-1)
    return (base.exp() * (base - other)).sum(dim=-1)


@torch.inference_mode()
def last_logits(
    model: LoadedModel, texts: Sequence[str], fwd_hooks: Sequence[Hook] = (), *, batch_size: int = 32
) -> Float[Tensor, "n vocab"]:
    """First-reply-token logits for each prompt under ``fwd_hooks`` (float32, CPU)."""
    out = [
        forward_last_logits(model, encode_prompts(model, texts[s : s + batch_size]), fwd_hooks).cpu()
        for s in range(0, len(texts), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, model.bridge.cfg.d_vocab)
