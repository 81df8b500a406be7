"""Batch sizes from available memory: a per-row memory model of a forward pass and of greedy decoding.

A batch row is one prompt. In inference mode a forward pass frees each block's activations once the next
block has its input, so a row's memory is what one block holds at its peak, plus what lives for the whole
pass. For a row of ``T`` tokens, in the model's dtype (``b`` bytes; float32 for the softmax and logits):

- one block's transients: the residual stream and its normed copy (``2·T·d_model``), queries, keys and
  values (``T·(n_heads + 2·n_kv_heads)·d_head``), the attention output (``T·n_heads·d_head``), the gated
  MLP's three intermediate tensors (``3·T·d_mlp``), all ``b`` bytes each, and the attention scores and
  their softmax (``2·n_heads·T²``, float32, the eager kernel's worst case);
- the logits at one position (``d_vocab`` float32) and the refusal score's float64 softmax of them
  (``2·d_vocab·8`` bytes);
- where the caller keeps the residual stream entering every layer (activation extraction, the clean pass
  of candidate scoring): ``n_layers·T·d_model·b``;
- for decoding ``new`` tokens: the key-value cache of every layer for ``T + new`` positions,
  ``2·n_layers·(T + new)·n_kv_heads·d_head·b``.

``SAFETY`` (2) multiplies the sum for allocator slack and the framework's own copies, and only
``MEMORY_FRACTION`` (0.6) of the free memory is planned for, so other work on the machine keeps room.
The batch is the free memory so planned over the bytes per row, at least 1 and at most the caller's cap.

>>> shape = RowShape(d_model=8, n_layers=2, d_mlp=16, n_heads=2, n_kv_heads=1, d_head=4, d_vocab=10, dtype_bytes=4)
>>> row_bytes(shape, 3)  # 1056 block + 144 attention scores + 200 logits
1400
>>> batch_size_for(free_bytes=100_000, per_row=1400, cap=64)  # 0.6 · 100000 / (2 · 1400)
21
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mechatlas.errors import MechatlasError

#: Multiplier on the modelled bytes per row (allocator slack, framework copies, hook outputs).
SAFETY = 2.0
#: Fraction of the free memory a batch may plan to use.
MEMORY_FRACTION = 0.6


@dataclass(frozen=True)
class RowShape:
    """The sizes a row's memory depends on (a model's configuration and dtype)."""

    d_model: int
    n_layers: int
    d_mlp: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_vocab: int
    dtype_bytes: int

    @classmethod
    def of(cls, cfg: Any, dtype: torch.dtype) -> RowShape:
        """From a TransformerLens-style config (``d_model``, ``n_layers``, ``d_mlp``, ``n_heads``, ...)."""
        n_heads = int(cfg.n_heads)
        return cls(
            d_model=int(cfg.d_model),
            n_layers=int(cfg.n_layers),
            d_mlp=int(getattr(cfg, "d_mlp", None) or 4 * cfg.d_model),
            n_heads=n_heads,
            n_kv_heads=int(getattr(cfg, "n_key_value_heads", None) or n_heads),
            d_head=int(getattr(cfg, "d_head", None) or cfg.d_model // n_heads),
            d_vocab=int(cfg.d_vocab),
            dtype_bytes=torch.empty((), dtype=dtype).element_size(),
        )


def row_bytes(shape: RowShape, seq_len: int, *, keep_residual: bool = False, new_tokens: int = 0) -> int:
    """Modelled peak bytes of one batch row of ``seq_len`` tokens (before ``SAFETY``); see the module."""
    t, b = seq_len + new_tokens, shape.dtype_bytes
    block = (
        b
        * t
        * (2 * shape.d_model + (2 * shape.n_heads + 2 * shape.n_kv_heads) * shape.d_head + 3 * shape.d_mlp)
    )
    scores = 4 * 2 * shape.n_heads * t * t
    logits = 4 * shape.d_vocab + 8 * 2 * shape.d_vocab
    kept = b * shape.n_layers * seq_len * shape.d_model if keep_residual else 0
    cache = 2 * b * shape.n_layers * t * shape.n_kv_heads * shape.d_head if new_tokens else 0
    return block + scores + logits + kept + cache


def batch_size_for(free_bytes: int, per_row: int, *, cap: int) -> int:
    """Rows that fit in ``MEMORY_FRACTION`` of ``free_bytes`` at ``SAFETY × per_row`` each, in ``[1, cap]``."""
    fits = int(MEMORY_FRACTION * free_bytes // (SAFETY * per_row))
    return max(1, min(cap, fits))


def available_bytes(device: torch.device) -> int:
    """Free memory where ``device``'s tensors live: CUDA's ``mem_get_info``, otherwise the host's
    ``MemAvailable`` (``/proc/meminfo``; psutil where there is no /proc)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    raise MechatlasError(
        f"cannot tell how much memory is free on this {os.uname().sysname} host (no /proc/meminfo, no psutil); "
        "set `run.batch_sizes: fixed` in params.yaml"
    )
