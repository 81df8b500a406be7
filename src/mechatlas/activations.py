"""Residual-stream activations at the post-instruction positions.

Arditi et al. 2024 (arXiv 2406.11717, §2.3) read the residual stream ``blocks.{L}.hook_resid_pre`` at
every post-instruction token: the chat-template tokens between the end of the user's text and the
start of the reply (``<|im_end|>\\n<|im_start|>assistant\\n`` in ChatML). Those tokens are derived
here from the tokenizer's own chat template, by templating a sentinel user message, so the same code
works for any chat model.

Extraction keeps only what it needs: a hook on each requested ``hook_resid_pre`` copies the requested
positions (a ``(batch, positions, d_model)`` slice) and nothing else; no activation cache is built, and
batches are handed to the caller one at a time so they can stream to disk.

>>> positions_from_end(3)
(-3, -2, -1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechatlas.errors import MechatlasError
from mechatlas.models import LoadedModel, chat_prompts

#: A user message no tokenizer merges with the template around it; only used to find the suffix.
SENTINEL = "MECHATLAS SENTINEL INSTRUCTION"

Hook = tuple[str, Callable[..., Any]]


class TemplateError(MechatlasError):
    """A chat template whose post-instruction tokens cannot be located in a prompt."""


def resid_pre(layer: int) -> str:
    """The TransformerLens hook name of the residual stream entering block ``layer``."""
    return f"blocks.{layer}.hook_resid_pre"


def positions_from_end(n: int) -> tuple[int, ...]:
    """Negative offsets ``(-n, ..., -1)``: with left padding they index the same tokens in every row."""
    return tuple(range(-n, 0))


@dataclass(frozen=True)
class PostInstruction:
    """The chat-template tokens that follow every user message and precede the reply."""

    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]

    @property
    def positions(self) -> tuple[int, ...]:
        return positions_from_end(len(self.token_ids))


def post_instruction_tokens(tokenizer: Any) -> PostInstruction:
    """Find the post-instruction tokens by templating a sentinel message and taking what follows it."""
    (prompt,) = chat_prompts(tokenizer, [SENTINEL])
    at = prompt.rfind(SENTINEL)
    if at < 0:
        raise TemplateError(
            "the chat template drops or rewrites the user's message, so the post-instruction tokens cannot be "
            "located; use a model whose template copies the message verbatim"
        )
    suffix = prompt[at + len(SENTINEL) :]
    ids = tuple(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    full = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not ids or tuple(full[-len(ids) :]) != ids:
        raise TemplateError(
            f"the chat template's reply prefix {suffix!r} tokenizes differently after a message than on its "
            "own; mechatlas cannot tell which tokens are post-instruction for this tokenizer"
        )
    return PostInstruction(ids, tuple(tokenizer.convert_ids_to_tokens(list(ids))))


def encode_prompts(
    model: LoadedModel, texts: Sequence[str], post: PostInstruction | None = None
) -> dict[str, Tensor]:
    """Left-padded chat-formatted ids, attention mask and position ids for a batch of user texts.

    Position ids count real tokens only (as ``generate`` does), so a padded row sees the same positions
    as the same prompt alone. With ``post`` given, every row is checked to end in those tokens.
    """
    enc = model.tokenizer(
        chat_prompts(model.tokenizer, list(texts)),
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    input_ids: Int[Tensor, "batch seq"] = enc["input_ids"]
    mask: Int[Tensor, "batch seq"] = enc["attention_mask"]
    if post is not None:
        n = len(post.token_ids)
        expected = torch.tensor(post.token_ids)
        bad = (input_ids[:, -n:] != expected).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise TemplateError(
                f"prompt {texts[bad[0]]!r} does not end in the post-instruction tokens {list(post.tokens)}; its last "
                "characters merge with the template's reply prefix. Strip trailing whitespace from the prompt"
            )
    position_ids = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    batch = {"input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids}
    return {k: v.to(model.device) for k, v in batch.items()}


@torch.inference_mode()
def forward_last_logits(
    model: LoadedModel, batch: dict[str, Tensor], fwd_hooks: Sequence[Hook] = ()
) -> Float[Tensor, "batch vocab"]:
    """Logits at the last position (the first reply token), in float32, under ``fwd_hooks``."""
    with model.bridge.hooks(fwd_hooks=list(fwd_hooks)):
        out = model.bridge.original_model(**batch, logits_to_keep=1, use_cache=False)
    return out.logits[:, -1, :].float()


@dataclass(frozen=True)
class ActivationBatch:
    """One batch of post-instruction activations, and the first-reply-token logits of the same pass."""

    start: int  # index of the batch's first prompt in the input order
    resid: Float[Tensor, "batch pos layer d_model"]  # float32, on the CPU
    last_logits: Float[Tensor, "batch vocab"] | None


@torch.inference_mode()
def iter_activations(
    model: LoadedModel,
    texts: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    batch_size: int = 32,
    with_logits: bool = True,
    progress: bool = False,
    desc: str = "activations",
) -> Iterator[ActivationBatch]:
    """Residual stream at ``layers`` × ``positions`` for each prompt, one batch at a time.

    ``positions`` are negative offsets from the end of the prompt (default: the post-instruction
    tokens); ``layers`` default to all. Each hook copies only its slice, so memory stays at one
    batch of ``(batch, positions, layers, d_model)`` whatever the number of prompts.
    """
    from tqdm.auto import tqdm

    post = post_instruction_tokens(model.tokenizer)
    layers = list(range(model.n_layers)) if layers is None else list(layers)
    offsets = list(post.positions if positions is None else positions)
    if any(p >= 0 for p in offsets):
        raise ValueError("positions are offsets from the end of the prompt and must be negative")
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        batch = encode_prompts(model, texts[start : start + batch_size], post)
        seq = batch["input_ids"].shape[1]
        if -min(offsets) > seq:
            raise ValueError(f"position {min(offsets)} reaches before the start of a {seq}-token prompt")
        index = torch.tensor([seq + p for p in offsets], device=model.device)
        out = torch.empty(len(batch["input_ids"]), len(offsets), len(layers), model.d_model)  # (B, P, L, D)
        hooks = [(resid_pre(layer), _copy_slice_into(out, i, index)) for i, layer in enumerate(layers)]
        if with_logits:
            logits: Tensor | None = forward_last_logits(model, batch, hooks).cpu()
        else:
            logits = None
            with model.bridge.hooks(fwd_hooks=hooks), _StopAfter(model, max(layers)):
                model.bridge.original_model(**batch, use_cache=False)
        yield ActivationBatch(start, out, logits)


def _copy_slice_into(out: Tensor, layer_index: int, positions: Tensor) -> Callable[..., Tensor]:
    def hook(resid: Float[Tensor, "batch seq d_model"], hook: Any) -> Tensor:
        out[:, :, layer_index, :] = resid.index_select(1, positions).float().cpu()  # (B, P, D)
        return resid

    return hook


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the last needed layer has been read."""


class _StopAfter:
    """Stop the forward pass at the input of block ``layer + 1`` (no later block or unembedding runs)."""

    def __init__(self, model: LoadedModel, layer: int) -> None:
        self.model = model
        self.layer = layer
        self.handle: Any = None

    def __enter__(self) -> _StopAfter:
        def stop(resid: Tensor, hook: Any) -> Tensor:
            raise _StopForward

        stop_at = resid_pre(self.layer + 1) if self.layer + 1 < self.model.n_layers else "ln_final.hook_in"
        self.handle = self.model.bridge.hooks(fwd_hooks=[(stop_at, stop)])
        self.handle.__enter__()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> bool:
        self.handle.__exit__(kind, value, traceback)
        return kind is _StopForward
