"""Residual-stream activations at the post-instruction positions.

Arditi et al. 2024 (arXiv 2406.11717, §2.3) read the residual stream ``blocks.{L}.hook_resid_pre`` at
every post-instruction token: the chat-template tokens between the end of the user's text and the
start of the reply (``<|im_end|>\\n<|im_start|>assistant\\n`` in ChatML). Those tokens are derived
here from the tokenizer's own chat template, by templating a sentinel user message, so the same code
works for any chat model.

Extraction keeps only what it needs: a hook on each requested ``hook_resid_pre`` copies the requested
positions (a ``(batch, positions, d_model)`` slice) and nothing else; no activation cache is built, and
batches are handed to the caller one at a time so they can stream to disk.

The store on disk (``ActivationStore``, ``write_store``) is one ``(prompt, position, layer, d_model)``
float32 array per prompt group, an ``index.parquet`` saying which prompt each row holds, float64 class
means and a ``meta.json``; this module is the one place that writes and parses it.

>>> from mechatlas.interp.models import positions_from_end
>>> positions_from_end(3)
(-3, -2, -1)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.errors import ArtifactError
from mechatlas.interp.hooks import resid_pre
from mechatlas.interp.models import LoadedModel, encode_prompts, post_instruction_tokens
from mechatlas.interp.scores import forward_last_logits
from mechatlas.io import check_digests, file_digests, load_npy, read_json, read_safetensors


@dataclass(frozen=True)
class ActivationBatch:
    """One batch of post-instruction activations, and the first-reply-token logits of the same pass."""

    start: int  # index of the batch's first prompt in the input order
    resid: Float[Tensor, "batch pos layer d_model"]  # float32, on the CPU
    last_logits: Float[Tensor, "batch vocab"] | None


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

    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    layers = list(range(model.n_layers)) if layers is None else list(layers)
    offsets = list(post.positions if positions is None else positions)
    if any(p >= 0 for p in offsets):
        raise ValueError("positions are offsets from the end of the prompt and must be negative")
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        # Inference mode per batch, not as a decorator: a decorated generator loses it when wrapped.
        with torch.inference_mode():
            batch = encode_prompts(model, texts[start : start + batch_size], post)
            seq = batch["input_ids"].shape[1]
            if -min(offsets) > seq:
                raise ValueError(f"position {min(offsets)} reaches before the start of a {seq}-token prompt")
            index = torch.tensor([seq + p for p in offsets], device=model.device)
            out = torch.empty(
                len(batch["input_ids"]), len(offsets), len(layers), model.d_model
            )  # (B, P, L, D)
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


# --- the activation store on disk ------------------------------------------------------------------------

STORE_META = "meta.json"
STORE_INDEX = "index.parquet"
STORE_MEANS = "means.safetensors"
#: Columns every store's index has: which prompt each row of which array holds.
STORE_COLUMNS = frozenset({"id", "label", "split", "domain", "text", "row", "kept"})


def group_file(group: str) -> str:
    """The array file of one prompt group (``<label>_<split>``), shape ``(prompt, position, layer, d_model)``."""
    return f"{group}.npy"


def write_store(
    folder: Path,
    groups: Sequence[str],
    index: pd.DataFrame,
    means: Mapping[str, Tensor],
    meta: Mapping[str, Any],
) -> None:
    """Finish a store in ``folder`` whose ``groups`` arrays are already there: the index, means and meta.

    ``folder`` is normally the temporary sibling of an ``atomic_dir``, so a half-written store is never
    seen under its real name.
    """
    from safetensors.torch import save_file

    missing = STORE_COLUMNS - set(index.columns)
    if missing:
        raise ValueError(f"an activation store index needs the column(s) {sorted(missing)}")
    for group in groups:
        if not (folder / group_file(group)).exists():
            raise ValueError(f"{folder / group_file(group)}: the group's array was not written")
    index.to_parquet(folder / STORE_INDEX, index=False)
    save_file({k: v.contiguous() for k, v in means.items()}, str(folder / STORE_MEANS))
    files = [*(group_file(group) for group in groups), STORE_INDEX, STORE_MEANS]
    recorded = {**meta, "sha256": file_digests(folder, files)}  # `open` refuses a file changed since
    (folder / STORE_META).write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class ActivationStore:
    """A folder of post-instruction activations: one float32 array per prompt group, an index, class means.

    ``index`` has one row per saved prompt (``STORE_COLUMNS``, plus a ``global`` row number in a fixed
    order); ``meta`` says which layers and positions the arrays hold. Open one with ``open``: a missing
    or incomplete store is refused with the file and the command that makes it.
    """

    folder: Path
    index: pd.DataFrame
    meta: Mapping[str, Any]

    @classmethod
    def open(
        cls, folder: Path, remedy: str = "run the refusal-direction activations stage"
    ) -> ActivationStore:
        meta_path, index_path = folder / STORE_META, folder / STORE_INDEX
        meta = read_json(meta_path, remedy)
        if not isinstance(meta, dict):
            raise ArtifactError(f"{meta_path}: not a JSON object; it is damaged: {remedy}")
        check_digests(folder, meta.get("sha256"), meta_path, remedy)
        index = pd.read_parquet(index_path).reset_index(drop=True)
        missing = STORE_COLUMNS - set(index.columns)
        if missing:
            raise ArtifactError(f"{index_path}: no column(s) {sorted(missing)}; {remedy} again")
        index["global"] = np.arange(len(index))
        return cls(folder, index, meta)

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(self.meta["positions"])

    @property
    def position_tokens(self) -> tuple[str, ...]:
        return tuple(self.meta["position_tokens"])

    @property
    def n_layers(self) -> int:
        return len(self.meta["layers"])

    @property
    def d_model(self) -> int:
        return int(self.meta["d_model"])

    def means(self) -> dict[str, Tensor]:
        """The class means the store was written with (float64), by name."""
        return read_safetensors(
            self.folder / STORE_MEANS, "the activation store is incomplete, write it again"
        )

    def resid(self, rows: pd.DataFrame, position_index: int) -> Float[Tensor, "n layer d_model"]:
        """Activations of ``rows`` (a slice of ``index``) at one position, all layers, in float32."""
        out = np.empty((len(rows), self.n_layers, self.d_model), dtype=np.float32)
        for (label, split), group in rows.groupby(["label", "split"], sort=False):
            array = load_npy(self.folder / group_file(f"{label}_{split}"), "write the activation store again")
            where = rows.index.get_indexer(group.index)
            out[where] = array[group["row"].to_numpy(), position_index]
        return torch.from_numpy(out)
