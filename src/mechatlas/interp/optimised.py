"""Directions found by gradient: refusal direction optimisation (RDO), refusal cones, and the smallest
subspace whose ablation removes refusal, on a Hugging Face decoder through plain ``torch`` hooks.

Wollschläger et al. (ICML 2025, arXiv 2502.17420) optimise a refusal direction with three losses:

- *ablation*: with the direction ablated at every layer, harmful prompts are teacher-forced on a
  compliant target reply (cross-entropy on the reply tokens);
- *addition*: with the direction (unit length, times the difference-in-means norm) added to the
  residual stream entering the selected layer, harmless prompts are teacher-forced on a refusal target;
- *retain*: with the direction ablated, harmless prompts teacher-forced on their own replies keep their
  next-token distributions (KL of the ablated distribution from the unablated one, on the reply tokens).

A *refusal cone* of dimension ``m`` is an orthonormal basis whose every direction in the positive orthant
(``unit(c @ basis)`` with ``c ≥ 0``) both bypasses refusal when ablated and induces it when added; it is
optimised with the same losses on sampled directions. RDO is the cone with ``m = 1``. As in the paper's
code the losses are weighted 1, 0.2 and 1 by default and the samples are ``|N(0, I)|`` coefficients
normalised to unit length. Where this module differs: one direction per batch row (each row of a batch
gets its own sample, and the first ``m`` rows the basis vectors themselves) instead of separate passes per
sample; the basis is a free ``(m, d)`` matrix made orthonormal by QR at every step (the losses do not
depend on its rows' lengths) instead of a projected gradient on the sphere; Adam with a fixed number of
steps instead of early stopping.

``optimise_subspace`` searches for an ``m``-dimensional subspace whose *whole span* ablated removes
refusal: the causal dimension as an optimiser sees it. Unconstrained, one direction suffices in every
model tried (it removes the read-out of the decision, not the mechanism: ``../shared/PLANTING.md``), so
it takes a ``Constraint``: ablation only in the blocks before a cut-off, a protected subspace (the
read-out, ``intervention_training.readout_directions``) the search must stay orthogonal to, and a retain
term on contexts where the refusal tokens are legitimately produced.

>>> torch.manual_seed(0) is not None
True
>>> c = cone_samples(torch.eye(3)[:2], 4, torch.Generator().manual_seed(1))
>>> tuple(c.shape), bool((c[:, 2] == 0).all()), bool((c @ torch.eye(3)[:2].T >= 0).all())
((4, 3), True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.intervention_training import ablated, complement_basis


@dataclass(frozen=True)
class Weights:
    """How much each loss counts (the paper's defaults)."""

    ablation: float = 1.0
    addition: float = 0.2
    retain: float = 1.0


@dataclass(frozen=True)
class Constraint:
    """What a bypass search may not do. ``blocks``: ablate only in blocks ``0 .. blocks-1`` (the stream
    entering the later blocks is free to carry the direction again); ``protected``: rows the directions
    stay orthogonal to; the retain term (``Batches.retain``) is weighted by ``Weights.retain``."""

    blocks: int | None = None
    protected: Float[Tensor, "p d_model"] | None = None

    def describe(self) -> str:
        parts = [
            "ablation at every layer"
            if self.blocks is None
            else f"ablation in blocks 0..{self.blocks - 1} only"
        ]
        if self.protected is not None and len(self.protected):
            parts.append(f"orthogonal to {len(self.protected)} protected directions (the read-out)")
        return "; ".join(parts)


@dataclass(frozen=True)
class Batches:
    """Teacher-forced batches (``teacher_forced``) for each loss; an empty list switches a loss off."""

    ablation: Sequence[dict[str, Tensor]]
    addition: Sequence[dict[str, Tensor]] = ()
    retain: Sequence[dict[str, Tensor]] = ()
    #: per retain batch, the unintervened logits at its scored positions (filled by ``with_baselines``)
    retain_logits: Sequence[Tensor] = field(default_factory=tuple)


@dataclass(frozen=True)
class Fit:
    basis: Float[Tensor, "m d_model"]
    losses: list[float]


def teacher_forced(
    prompt_ids: Sequence[Sequence[int]], reply_ids: Sequence[Sequence[int]], pad_id: int
) -> dict[str, Tensor]:
    """A left-padded batch of prompt + reply tokens, with ``labels``: at each position the reply token it
    predicts, -100 elsewhere (position t predicts token t + 1)."""
    from mechatlas.interp.models import left_pad

    batch = left_pad([list(p) + list(r) for p, r in zip(prompt_ids, reply_ids, strict=True)], pad_id, "cpu")
    width = batch["input_ids"].shape[1]
    labels = torch.full((len(reply_ids), width), -100)
    for i, reply in enumerate(reply_ids):
        if reply:
            labels[i, width - len(reply) - 1 : width - 1] = torch.tensor(list(reply))
    return {**batch, "labels": labels}


def batches_of(
    prompt_ids: Sequence[Sequence[int]], reply_ids: Sequence[Sequence[int]], pad_id: int, size: int
) -> list[dict[str, Tensor]]:
    return [
        teacher_forced(prompt_ids[s : s + size], reply_ids[s : s + size], pad_id)
        for s in range(0, len(prompt_ids), size)
    ]


def _forward(model: Any, batch: dict[str, Tensor]) -> Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return model(**inputs, use_cache=False).logits.float()


def reply_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the labelled positions."""
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )


def reply_kl(logits: Tensor, baseline: Tensor) -> Tensor:
    """Mean over positions of KL(intervened ‖ baseline) (the paper code's order), in nats."""
    if logits.shape[0] == 0:  # no scored position in this batch
        return logits.sum() * 0.0
    log_p = torch.log_softmax(logits, dim=-1)
    log_q = torch.log_softmax(baseline, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def with_baselines(model: Any, batches: Batches) -> Batches:
    """``batches`` with the unintervened logits of every retain batch at its labelled positions."""
    with torch.no_grad():
        logits = tuple(_forward(model, b)[b["labels"] >= 0] for b in batches.retain)
    return Batches(batches.ablation, batches.addition, batches.retain, logits)


@torch.no_grad()
def cone_samples(basis: Float[Tensor, "m d"], n: int, generator: torch.Generator) -> Float[Tensor, "n d"]:
    """``n`` unit directions of the cone: ``unit(c @ basis)`` with ``c = |N(0, I_m)|``; the first
    ``min(n, m)`` are the basis vectors themselves."""
    return _cone_rows(basis, n, generator)


def _cone_rows(basis: Tensor, n: int, generator: torch.Generator) -> Tensor:
    m = basis.shape[0]
    coefficients = torch.randn(n, m, generator=generator).abs()
    coefficients[: min(n, m)] = torch.eye(m)[: min(n, m)]
    rows = coefficients.to(basis.dtype) @ basis
    return rows / rows.norm(dim=-1, keepdim=True).clamp(min=1e-12)


class _Addition:
    """Adds one vector per batch row to the residual stream entering block ``layer`` (differentiable)."""

    def __init__(self, model: Any, layer: int) -> None:
        self.block = model.model.layers[layer]
        self.vectors: Tensor | None = None

    def __enter__(self) -> _Addition:
        def hook(module: Any, args: Any, kwargs: Any) -> Any:
            if self.vectors is None:
                return None
            if args:
                hidden = args[0] + self.vectors.unsqueeze(1).to(args[0].dtype)
                return (hidden, *args[1:]), kwargs
            hidden = kwargs["hidden_states"] + self.vectors.unsqueeze(1).to(kwargs["hidden_states"].dtype)
            return args, {**kwargs, "hidden_states": hidden}

        self.handle = self.block.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def _steps_loop(
    model: Any,
    raw: Tensor,
    batches: Batches,
    *,
    directions_for: Any,
    weights: Weights,
    constraint: Constraint,
    layer: int | None,
    alpha: float,
    steps: int,
    lr: float,
) -> list[float]:
    for p in model.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam([raw], lr=lr)
    protected = None if constraint.protected is None else constraint.protected.float()
    current: list[Tensor | None] = [None]
    losses: list[float] = []
    addition = (
        _Addition(model, layer) if layer is not None and batches.addition and weights.addition else None
    )
    with ablated(model, lambda: current[0], blocks=constraint.blocks):
        for step in range(steps):
            basis = complement_basis(raw, protected)
            loss = torch.zeros(())
            if weights.ablation and batches.ablation:
                batch = batches.ablation[step % len(batches.ablation)]
                current[0] = directions_for(basis, batch["input_ids"].shape[0])
                loss = loss + weights.ablation * reply_cross_entropy(_forward(model, batch), batch["labels"])
            if weights.retain and batches.retain:
                index = step % len(batches.retain)
                batch = batches.retain[index]
                current[0] = directions_for(basis, batch["input_ids"].shape[0])
                logits = _forward(model, batch)[batch["labels"] >= 0]
                loss = loss + weights.retain * reply_kl(logits, batches.retain_logits[index])
            current[0] = None
            if addition is not None:
                batch = batches.addition[step % len(batches.addition)]
                rows = directions_for(basis, batch["input_ids"].shape[0])[:, 0]
                with addition:
                    addition.vectors = alpha * rows
                    ce = reply_cross_entropy(_forward(model, batch), batch["labels"])
                    addition.vectors = None
                loss = loss + weights.addition * ce
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses


def _start(m: int, d_model: int, seed: int, init: Tensor | None) -> tuple[Tensor, torch.Generator]:
    """The free ``(m, d)`` matrix the basis is made from: seeded Gaussian rows of about unit length (the
    paper's code optimises unit vectors), or the unit-length ``init`` rows first."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(m, d_model, generator=generator) / d_model**0.5
    if init is not None:
        raw[: len(init)] = init.float()[:m] / init.float()[:m].norm(dim=-1, keepdim=True)
    return raw.requires_grad_(True), generator


def _spanned(basis: Tensor, n: int) -> Tensor:
    return basis.unsqueeze(0).expand(n, -1, -1)  # (n, m, d): the whole span on every row


def _optimise(
    model: Any,
    batches: Batches,
    m: int,
    directions: Callable[[torch.Generator], Callable[[Tensor, int], Tensor]],
    *,
    weights: Weights,
    constraint: Constraint,
    layer: int | None,
    alpha: float,
    steps: int,
    lr: float,
    seed: int,
    init: Tensor | None,
) -> Fit:
    """Adam on ``_start``'s matrix; ``directions(generator)`` gives each batch row what it ablates."""
    d_model = model.get_input_embeddings().weight.shape[1]
    raw, generator = _start(m, d_model, seed, init)
    losses = _steps_loop(
        model, raw, with_baselines(model, batches), directions_for=directions(generator), weights=weights,
        constraint=constraint, layer=layer, alpha=alpha, steps=steps, lr=lr,
    )  # fmt: skip
    with torch.no_grad():
        basis = complement_basis(raw, None if constraint.protected is None else constraint.protected.float())
    return Fit(basis.detach().float(), losses)


def optimise_cone(
    model: Any,
    batches: Batches,
    m: int,
    *,
    layer: int,
    alpha: float,
    weights: Weights = Weights(),
    constraint: Constraint = Constraint(),
    steps: int = 200,
    lr: float = 0.01,
    seed: int = 0,
    init: Tensor | None = None,
) -> Fit:
    """An orthonormal ``(m, d)`` basis whose cone directions, one per batch row, bypass refusal when
    ablated and induce it when added at ``alpha`` to the stream entering ``layer`` (RDO for ``m = 1``).
    ``init``: starting rows (for example the difference-in-means direction), else a seeded Gaussian."""

    def per_row(generator: torch.Generator) -> Callable[[Tensor, int], Tensor]:
        return lambda basis, n: _cone_rows(basis, n, generator).unsqueeze(1)  # (n, 1, d): one per row

    return _optimise(
        model, batches, m, per_row, weights=weights, constraint=constraint, layer=layer, alpha=alpha,
        steps=steps, lr=lr, seed=seed, init=init,
    )  # fmt: skip


def optimise_subspace(
    model: Any,
    batches: Batches,
    m: int,
    *,
    weights: Weights = Weights(addition=0.0),
    constraint: Constraint = Constraint(),
    steps: int = 200,
    lr: float = 0.01,
    seed: int = 0,
    init: Tensor | None = None,
) -> Fit:
    """An ``m``-dimensional subspace whose whole span, ablated under ``constraint``, makes the ablation
    batches' prompts follow their targets, with the retain batches' distributions kept."""
    return _optimise(
        model, batches, m, lambda generator: _spanned, weights=weights, constraint=constraint, layer=None,
        alpha=0.0, steps=steps, lr=lr, seed=seed, init=init,
    )  # fmt: skip
