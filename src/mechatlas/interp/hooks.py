"""TransformerLens hook names, and the type of a hook.

A ``Hook`` is a ``(hook_name, fn)`` pair for ``model.bridge.hooks(fwd_hooks=...)``. Directional ablation
edits every place that writes to the residual stream, at every layer: ``ABLATION_SITES``.

>>> resid_pre(3)
'blocks.3.hook_resid_pre'
>>> ablation_hook_names(1)
['blocks.0.hook_resid_pre', 'blocks.0.hook_attn_out', 'blocks.0.hook_mlp_out']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def resid_pre(layer: int) -> str:
    """The TransformerLens hook name of the residual stream entering block ``layer``."""
    return f"blocks.{layer}.hook_resid_pre"


Hook = tuple[str, Callable[..., Any]]


#: Every place a direction is removed by ``ablation_hooks``, per layer.
ABLATION_SITES: tuple[str, ...] = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")


def ablation_hook_names(n_layers: int, blocks: int | None = None) -> list[str]:
    """``blocks.{L}.hook_resid_pre``, ``hook_attn_out`` and ``hook_mlp_out`` for every layer, or for the
    first ``blocks`` layers only (the direction is then absent from the stream entering block ``blocks``,
    and later blocks may write it again)."""
    last = n_layers if blocks is None else min(blocks, n_layers)
    return [f"blocks.{layer}.{site}" for layer in range(last) for site in ABLATION_SITES]
