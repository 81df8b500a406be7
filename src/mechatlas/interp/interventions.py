"""Interventions on the residual stream: directional ablation, activation addition, weight orthogonalization.

Arditi et al. 2024 (arXiv 2406.11717, §2.4 and §4):

- *Directional ablation* removes a direction ``r̂`` from every component that writes to the residual
  stream: ``x ← x - r̂ r̂ᵀ x`` on the residual stream entering every block (``hook_resid_pre``) and on
  every attention and MLP output (``hook_attn_out``, ``hook_mlp_out``), at every position. With a
  ``(k, d_model)`` matrix the whole span is removed (its rows are orthonormalized first).
- *Activation addition* adds ``c·r`` (the unnormalised difference in means) to the residual stream
  entering one block, at every position; a negative ``c`` subtracts it.
- *Weight orthogonalization* bakes the ablation into the weights: every matrix that writes to the
  residual stream (token embedding, attention out-projection, MLP down-projection, and their biases)
  is replaced by ``W ← W - r̂ r̂ᵀ W``. Then no component can write along ``r̂`` and the new checkpoint
  computes exactly what the hooked model computes. This holds only when those matrices write to the
  residual stream directly: architectures with a norm after each sublayer (Gemma 2's
  ``post_attention_layernorm``/``post_feedforward_layernorm``) rescale the output per coordinate, so
  there the edit is refused with an explanation.

Hooks are ``(hook_name, fn)`` pairs for ``model.bridge.hooks(fwd_hooks=...)`` and
``mechatlas.interp.models.greedy_generate``; they work during KV-cached generation too.

>>> x = torch.tensor([[[3.0, 4.0]]])
>>> project_out(x, torch.tensor([[1.0, 0.0]])).tolist()
[[[0.0, 4.0]]]
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechatlas.errors import MechatlasError
from mechatlas.interp.directions import orthonormal_basis
from mechatlas.interp.hooks import Hook, ablation_hook_names
from mechatlas.interp.models import LoadedModel


class InterventionError(MechatlasError):
    """An intervention that cannot be applied to this model as asked."""


def project_out(
    x: Float[Tensor, "batch seq d_model"],
    basis: Float[Tensor, "k d_model"] | Float[Tensor, "batch k d_model"],
) -> Float[Tensor, "batch seq d_model"]:
    """Remove from ``x`` its component in the span of orthonormal ``basis`` rows (shared, or one set per row)."""
    basis = basis.to(dtype=x.dtype, device=x.device)
    if basis.dim() == 2:
        return x - (x @ basis.T) @ basis  # (B, S, k) @ (k, D)
    coefficients = torch.einsum("bsd,bkd->bsk", x, basis)
    return x - torch.einsum("bsk,bkd->bsd", coefficients, basis)


def _basis(directions: Float[Tensor, "*k d_model"]) -> Float[Tensor, "rank d_model"]:
    """The orthonormal basis to remove; an intervention on no direction at all is a mistake."""
    basis = orthonormal_basis(directions)
    if len(basis) == 0:
        raise InterventionError(
            "cannot ablate a zero vector (or the span of zero vectors); the direction has no length"
        )
    return basis


def _ablate(basis: Tensor) -> Callable[..., Tensor]:
    def hook(x: Tensor, hook: Any) -> Tensor:
        if basis.dim() == 3 and basis.shape[0] != x.shape[0]:
            raise InterventionError(
                f"{hook.name}: {basis.shape[0]} per-row directions for a batch of {x.shape[0]}"
            )
        return project_out(x, basis)

    return hook


def ablation_hooks(
    n_layers: int, directions: Float[Tensor, "*k d_model"], blocks: int | None = None
) -> list[Hook]:
    """Directional ablation of a direction, or of the span of a ``(k, d_model)`` matrix, everywhere (or in
    the first ``blocks`` layers only: ``ablation_hook_names``)."""
    hook = _ablate(_basis(directions).float())
    return [(name, hook) for name in ablation_hook_names(n_layers, blocks)]


def row_ablation_hooks(n_layers: int, directions: Float[Tensor, "batch d_model"]) -> list[Hook]:
    """Directional ablation with one direction per batch row (a zero row leaves its row untouched).

    This lets many candidate directions be scored in one forward pass: repeat the prompts once per
    candidate and give each copy its candidate's direction.
    """
    norms = directions.to(torch.float64).norm(dim=-1, keepdim=True)
    basis = (directions.to(torch.float64) / norms.clamp(min=1e-30)).float().unsqueeze(1)  # (B, 1, D)
    hook = _ablate(basis)
    return [(name, hook) for name in ablation_hook_names(n_layers)]


def addition_hooks(vector: Float[Tensor, " d_model"], layer: int, coefficient: float = 1.0) -> list[Hook]:
    """Activation addition: ``x + c·r`` on the residual stream entering ``layer``, at every position."""
    shift = (coefficient * vector.to(torch.float64)).float()

    def hook(x: Tensor, hook: Any) -> Tensor:
        return x + shift.to(dtype=x.dtype, device=x.device)

    return [(f"blocks.{layer}.hook_resid_pre", hook)]


def row_addition_hooks(
    vectors: Float[Tensor, "batch d_model"],
    layers: Int[Tensor, " batch"],
    n_layers: int,
    coefficient: float = 1.0,
) -> list[Hook]:
    """Activation addition with one vector and one layer per batch row (a zero row adds nothing)."""
    shifts = (coefficient * vectors.to(torch.float64)).float()
    hooks: list[Hook] = []
    for layer in sorted(set(layers.tolist())):
        if not 0 <= layer < n_layers:
            raise InterventionError(f"layer {layer} is outside the model's 0..{n_layers - 1}")
        rows = (layers == layer).float().unsqueeze(-1)  # (B, 1)
        per_layer = (shifts * rows).unsqueeze(1)  # (B, 1, D)

        def hook(x: Tensor, hook: Any, per_layer: Tensor = per_layer) -> Tensor:
            if per_layer.shape[0] != x.shape[0]:
                raise InterventionError(
                    f"{hook.name}: {per_layer.shape[0]} per-row vectors for a batch of {x.shape[0]}"
                )
            return x + per_layer.to(dtype=x.dtype, device=x.device)

        hooks.append((f"blocks.{layer}.hook_resid_pre", hook))
    return hooks


# --- weight orthogonalization -------------------------------------------------------------------------


def _hf_name(bridged_name: str) -> str:
    """A parameter's name in the Hugging Face checkpoint: the bridge wraps modules in ``_original_component``."""
    return bridged_name.replace("._original_component", "")


def _writers(model: LoadedModel) -> list[tuple[Any, str]]:
    """Every module that writes to the residual stream, with how its weight is laid out.

    ``rows``: the weight is ``(n, d_model)`` (embeddings, GPT-2's ``Conv1D``); ``columns``: it is an
    ``nn.Linear`` weight ``(d_model, d_in)`` whose output is the residual stream.
    """
    from transformers.pytorch_utils import Conv1D

    bridge = model.bridge
    post_norms = [
        name for name in ("ln1_post", "ln2_post") if any(hasattr(block, name) for block in bridge.blocks)
    ]
    if post_norms:
        raise InterventionError(
            f"{model.model_id}: this architecture normalises each sublayer's output before adding it to the "
            f"residual stream ({', '.join(post_norms)}), so orthogonalizing the weights is not equivalent to "
            "directional ablation; use the hook-based ablation (`ablation_hooks`) for this model instead"
        )
    writers: list[tuple[Any, str]] = [(bridge.embed.original_component, "rows")]
    if getattr(bridge, "pos_embed", None) is not None:
        writers.append((bridge.pos_embed.original_component, "rows"))
    for index, block in enumerate(bridge.blocks):
        for part, attribute in (("attn", "o"), ("mlp", "out")):
            component = getattr(getattr(block, part, None), attribute, None)
            if component is None:
                raise InterventionError(
                    f"{model.model_id}: block {index} has no single {part} output projection (`{part}.{attribute}`) "
                    "that mechatlas knows how to orthogonalize (mixture-of-experts and fused layouts are not supported)"
                )
            module = component.original_component
            if isinstance(module, Conv1D):
                writers.append((module, "rows"))
            elif isinstance(module, torch.nn.Linear):
                writers.append((module, "columns"))
            else:
                raise InterventionError(
                    f"{model.model_id}: block {index} {part} output is a {type(module).__name__}"
                )
    return writers


def _orthogonalize(weight: Tensor, basis: Tensor, layout: str) -> Tensor:
    """``W - Q Qᵀ W`` along the axis that lives in the residual stream, in float64."""
    w = weight.detach().to(torch.float64)
    q = basis.to(device=w.device)
    if w.dim() == 1 or layout == "columns":  # bias (d_model,) or Linear weight (d_model, d_in)
        return (w - q.T @ (q @ w)).to(weight.dtype)
    return (w - (w @ q.T) @ q).to(weight.dtype)  # (n, d_model)


def orthogonalized_state_dict(
    model: LoadedModel, directions: Float[Tensor, "*k d_model"]
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The model's Hugging Face state dict with every residual-stream writer orthogonalized.

    Returns the tensors (by checkpoint name, ready for ``safetensors``) and the config changes the
    checkpoint needs: tied input/output embeddings are untied, because only the input side changes.
    """
    from transformers import AutoModelForCausalLM

    hf = model.bridge.original_model
    basis = _basis(directions)
    edited: dict[int, Tensor] = {}
    for module, layout in _writers(model):
        for parameter in (module.weight, getattr(module, "bias", None)):
            if parameter is not None:
                edited[id(parameter)] = _orthogonalize(
                    parameter, basis, "columns" if parameter.dim() == 1 else layout
                )

    with torch.device("meta"):
        expected = list(AutoModelForCausalLM.from_config(hf.config).state_dict())
    current = {_hf_name(name): tensor for name, tensor in hf.state_dict(keep_vars=True).items()}
    missing = [name for name in expected if name not in current]
    if missing:
        raise InterventionError(
            f"{model.model_id}: cannot map the bridged weights back to checkpoint names (missing {missing[:3]})"
        )
    unembed = getattr(hf.get_output_embeddings(), "original_component", hf.get_output_embeddings())
    unembed_weight = getattr(unembed, "weight", None)
    tied = unembed_weight is not None and unembed_weight is model.bridge.embed.original_component.weight
    lm_head = next(
        (n for n in expected if n != "model.embed_tokens.weight" and current[n] is unembed_weight), None
    )
    state: dict[str, Tensor] = {}
    for name in expected:
        tensor = current[name]
        new = (
            tensor.detach() if id(tensor) not in edited or (tied and name == lm_head) else edited[id(tensor)]
        )
        state[name] = new.detach().to("cpu").contiguous().clone()
    return state, ({"tie_word_embeddings": False} if tied else {})


def save_orthogonalized_checkpoint(
    model: LoadedModel,
    directions: Float[Tensor, "*k d_model"],
    folder: str | Path,
    note: dict[str, Any] | None = None,
) -> Path:
    """Write a Hugging Face checkpoint (safetensors) with the direction(s) orthogonalized out of the weights.

    It loads through ``mechatlas.interp.models.load_model`` like any other checkpoint. ``note`` is stored
    next to it as ``mechatlas.json`` (what was removed, from which model).
    """
    from safetensors.torch import save_file

    from mechatlas.io import atomic_dir

    state, config_changes = orthogonalized_state_dict(model, directions)
    hf = model.bridge.original_model
    config = copy.deepcopy(hf.config)
    for key, value in config_changes.items():
        setattr(config, key, value)
    config.dtype = str(next(iter(state.values())).dtype).removeprefix("torch.")
    with atomic_dir(folder) as tmp:
        config.save_pretrained(tmp)
        if getattr(hf, "generation_config", None) is not None:
            hf.generation_config.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "mechatlas.json").write_text(json.dumps(note or {}, indent=2, sort_keys=True) + "\n")
    return Path(folder)


@torch.inference_mode()
def max_logit_gap(
    model: LoadedModel,
    other: LoadedModel,
    texts: Sequence[str],
    *,
    fwd_hooks: Sequence[Hook] = (),
    other_hooks: Sequence[Hook] = (),
    batch_size: int = 32,
) -> float:
    """The largest |logit difference| between two models (each under its hooks) over all real positions."""
    from mechatlas.interp.models import encode_prompts

    gap = 0.0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        logits = []
        for each, hooks in ((model, fwd_hooks), (other, other_hooks)):
            batch = encode_prompts(each, chunk)
            with each.bridge.hooks(fwd_hooks=list(hooks)):
                logits.append(each.bridge.original_model(**batch, use_cache=False).logits.float().cpu())
        real = batch["attention_mask"].bool().cpu()
        gap = max(gap, float((logits[0] - logits[1]).abs()[real].max()))
    return gap
