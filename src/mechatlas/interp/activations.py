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
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.hooks import resid_pre
from mechatlas.interp.models import LoadedModel, encode_prompts, post_instruction_tokens
from mechatlas.interp.scores import forward_last_logits


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
