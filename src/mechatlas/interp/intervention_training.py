"""Training and searching under directional ablation: differentiable hooks on a Hugging Face decoder.

Interchange intervention training (Geiger et al., ICML 2022) trains a network so that an intervention on
chosen internal quantities has the effect a hypothesised mechanism implies. Here the intervention is
directional ablation (Arditi et al. 2024, arXiv 2406.11717): a subspace is projected out of everything
that writes to the residual stream (the token embedding, every attention output and every MLP output),
so it is absent from the residual stream entering every block. That is the intervention
``mechatlas.interp.interventions.ablation_hooks`` applies through TransformerLens; this module applies
the same projection with plain ``torch`` forward hooks on the Hugging Face modules, where gradients flow
through it, with one subspace per batch row (zero rows of a basis remove nothing).

It also holds the adversary a planted mechanism must survive: a gradient search for a few directions
whose ablation removes refusal (in the spirit of refusal direction optimisation, Wollschläger et al.
2025, arXiv 2502.17420), optionally constrained to the orthogonal complement of a protected subspace
(the read-out of the decision, ``readout_directions``), since an unconstrained search can always remove
refusal by removing the read-out rather than the mechanism.

>>> b = pad_bases([torch.eye(3)[:1], torch.eye(3)[1:3]], 3)
>>> tuple(b.shape)
(2, 2, 3)
>>> project_rows(torch.ones(2, 1, 3), b).tolist()
[[[0.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.errors import MechatlasError


class WriterError(MechatlasError):
    """A model whose residual-stream writers this module does not know how to hook."""


def residual_writers(model: Any) -> list[torch.nn.Module]:
    """The modules whose outputs are added to the residual stream, in order: embedding, then per block
    the attention and the MLP (Llama-style decoders: Qwen2, Llama, Mistral and their kin).

    Architectures that normalise a sublayer's output before adding it (Gemma 2's post-norms) are refused:
    projecting the sublayer's output is then not the same as removing the direction from the stream.
    """
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    embed = getattr(inner, "embed_tokens", None)
    if layers is None or embed is None:
        raise WriterError(f"{type(model).__name__}: no `model.embed_tokens` and `model.layers` to hook")
    writers: list[torch.nn.Module] = [embed]
    for index, layer in enumerate(layers):
        if hasattr(layer, "post_attention_layernorm") and hasattr(layer, "post_feedforward_layernorm"):
            raise WriterError(
                f"{type(model).__name__}: block {index} normalises its sublayer outputs before the residual "
                "add, so ablating them is not directional ablation of the residual stream"
            )
        for name in ("self_attn", "mlp"):
            module = getattr(layer, name, None)
            if module is None:
                raise WriterError(f"{type(model).__name__}: block {index} has no `{name}`")
            writers.append(module)
    return writers


def pad_bases(bases: Sequence[Tensor], d_model: int) -> Float[Tensor, "batch k d_model"]:
    """One ``(k_i, d_model)`` orthonormal basis per row, zero-padded to the largest ``k`` (at least 1).

    A zero row projects nothing, so a row with an empty basis (``k_i = 0``) is left unablated.
    """
    width = max([1, *(len(b) for b in bases)])
    out = torch.zeros(len(bases), width, d_model)
    for row, basis in enumerate(bases):
        if len(basis):
            out[row, : len(basis)] = basis.to(out.dtype)
    return out


def project_rows(x: Float[Tensor, "batch seq d"], bases: Float[Tensor, "batch k d"]) -> Tensor:
    """``x`` with each row's span of ``bases`` (orthonormal or zero rows) projected out; differentiable."""
    b = bases.to(dtype=x.dtype, device=x.device)
    return x - torch.einsum("bsk,bkd->bsd", torch.einsum("bsd,bkd->bsk", x, b), b)


@contextmanager
def ablated(model: Any, bases: Callable[[], Tensor | None], blocks: int | None = None) -> Iterator[None]:
    """Within the block, every residual-stream writer of ``model`` has ``bases()`` projected out: the
    embedding and the attention and MLP of every block, or of the first ``blocks`` blocks only (the
    TransformerLens sites of ``ablation_hooks(n_layers, directions, blocks)``).

    ``bases`` is called at each hook, so the caller can change the subspaces between forward passes;
    it returns a ``(batch, k, d_model)`` tensor (``pad_bases``), or ``None`` for no ablation.
    """

    def hook(module: Any, args: Any, output: Any) -> Any:
        current = bases()
        if current is None:
            return output
        if isinstance(output, tuple):
            return (project_rows(output[0], current), *output[1:])
        return project_rows(output, current)

    writers = residual_writers(model)
    if blocks is not None:
        writers = writers[: 1 + 2 * blocks]
    handles = [module.register_forward_hook(hook) for module in writers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def readout_directions(
    model: Any, decision_ids: Sequence[int], reference_id: int
) -> Float[Tensor, "n d_model"]:
    """The residual-stream directions that read the decision out: ``g ⊙ (W_U[t] - W_U[ref])`` per token.

    ``g`` is the final norm's weight (RMSNorm scales each coordinate before the unembedding), so moving
    the last residual stream along these directions changes each decision token's logit against the
    reference token's. Rows are orthonormalised (float64).
    """
    from mechatlas.interp.directions import orthonormal_basis

    unembed = model.get_output_embeddings().weight.detach().to(torch.float64)
    norm = getattr(getattr(model, "model", None), "norm", None)
    gain = (
        norm.weight.detach().to(torch.float64)
        if norm is not None and getattr(norm, "weight", None) is not None
        else torch.ones(unembed.shape[1], dtype=torch.float64)
    )
    rows = torch.stack([gain * (unembed[t] - unembed[reference_id]) for t in decision_ids])
    return orthonormal_basis(rows)


def complement_basis(
    raw: Float[Tensor, "k d"], protected: Float[Tensor, "p d"] | None
) -> Float[Tensor, "k d"]:
    """An orthonormal basis of ``raw``'s rows after removing their ``protected`` component (QR; differentiable)."""
    if protected is not None and len(protected):
        p = protected.to(raw.dtype)
        raw = raw - (raw @ p.T) @ p
    q, _ = torch.linalg.qr(raw.T)
    return q.T


def bypass_search(
    model: Any,
    batches: Sequence[dict[str, Tensor]],
    refusal_ids: Sequence[int],
    comply_id: int,
    k: int,
    *,
    protected: Float[Tensor, "p d"] | None = None,
    steps: int = 200,
    lr: float = 0.02,
    seed: int = 0,
    init: Float[Tensor, "k d_model"] | None = None,
) -> tuple[Float[Tensor, "k d_model"], list[float]]:
    """``k`` orthonormal directions whose ablation everywhere makes the prompts of ``batches`` comply.

    Minimises the mean refusal log-odds at the first reply position (``logsumexp`` of the refusal
    tokens' logits minus the compliance token's), clamped at -4 so that prompts already complying stop
    pulling. With ``protected``, the directions are kept orthogonal to it at every step. Each batch is a
    left-padded chat batch whose last position is the first reply token (``input_ids``,
    ``attention_mask``, ``position_ids``). Adam from ``init`` (a warm start, e.g. the previous search's
    basis) or else a seeded Gaussian start; the weights are frozen during the search and their
    ``requires_grad`` flags restored afterwards, so it can run inside a training loop. Returns the basis
    (float32) and the loss per step.
    """
    d_model = model.get_input_embeddings().weight.shape[1]
    if init is not None:
        if tuple(init.shape) != (k, d_model):
            raise ValueError(f"bypass_search: init has shape {tuple(init.shape)}, expected {(k, d_model)}")
        raw = init.detach().float().clone().requires_grad_(True)
    else:
        generator = torch.Generator().manual_seed(seed)
        raw = torch.randn(k, d_model, generator=generator).requires_grad_(True)
    optimizer = torch.optim.Adam([raw], lr=lr)
    protected_ = None if protected is None else protected.float()
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    refusal = torch.tensor(list(refusal_ids))
    current: list[Tensor | None] = [None]
    losses: list[float] = []
    try:
        with ablated(model, lambda: current[0]):
            for step in range(steps):
                batch = batches[step % len(batches)]
                basis = complement_basis(raw, protected_)
                current[0] = basis.unsqueeze(0).expand(batch["input_ids"].shape[0], -1, -1)
                logits = model(**batch, use_cache=False).logits[:, -1, :].float()
                odds = torch.logsumexp(logits[:, refusal], dim=-1) - logits[:, comply_id]
                loss = odds.clamp(min=-4.0).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    with torch.no_grad():
        return complement_basis(raw, protected_).detach().float(), losses
