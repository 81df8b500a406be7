"""Causal geometry of refusal: which directions and subspaces the model *uses* to refuse.

The representation-side estimators in ``mechatlas.interp.geometry`` say along how many directions harmful and
harmless activations differ. This module asks the model: remove a subspace from the residual stream
(directional ablation at every layer and position, Arditi et al., arXiv 2406.11717) or add a direction
(activation addition), and measure refusal on held-out prompts. The interventions themselves are
``mechatlas.interp.interventions``; the refusal measurements are ``mechatlas.interp.judges``'s.

- ``ablation_sweep``: refusal after ablating the top-k estimated subspace, k = 1 ... K, against k
  random directions. The smallest k that brings refusal below a threshold is the *causal* dimension
  (``smallest_k``, with a bootstrap CI over prompts); ``causal_dimensionality`` does both for a notebook.
- ``cone_check`` (Wollschläger et al., arXiv 2502.17420): do several directions each induce refusal
  when added, and positive combinations of them too, while ablating any one leaves refusal in place
  and ablating their span removes it?
- ``transfer_matrix``: ablate harm domain A's direction, measure refusal on domain B.
- ``steering``: ablate or add directions read at different tokens (harmfulness at the last instruction
  token versus refusal after it, Zhao et al., arXiv 2507.11878) and compare what each does to refusal.

Every function returns per-prompt judgements; summaries (Wilson intervals for rates, bootstrap for
the causal dimension) are computed from them, so nothing is averaged before it is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.config import CausalJudge
from mechatlas.interp.directions import random_subspace
from mechatlas.interp.hooks import Hook
from mechatlas.interp.interventions import ablation_hooks, addition_hooks
from mechatlas.interp.judges import RefusalMeter
from mechatlas.interp.models import LoadedModel
from mechatlas.interp.scores import last_logits
from mechatlas.stats import rate_over_unit


@dataclass(frozen=True)
class HeldOutPrompts:
    """Held-out prompts the interventions are measured on."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    domains: tuple[str, ...]
    clusters: tuple[str, ...] | None = None  # the unit intervals resample (organism framing); None: prompts


def _rows(prompts: HeldOutPrompts, flags: np.ndarray, **columns: Any) -> pd.DataFrame:
    cluster = {"cluster": list(prompts.clusters)} if prompts.clusters is not None else {}
    return pd.DataFrame(
        {
            **columns,
            "id": list(prompts.ids),
            "domain": list(prompts.domains),
            "refused": flags.astype(bool),
            **cluster,
        }
    )


def rate_of_rows(rows: pd.DataFrame) -> dict[str, Any]:
    """The ``refused`` rate of ``rows``: resampling whole clusters where rows carry a ``cluster``, else Wilson."""
    clusters = rows["cluster"].astype(str).tolist() if "cluster" in rows else None
    return rate_over_unit(rows["refused"].astype(bool).tolist(), clusters)


# --- the causal dimension -------------------------------------------------------------------------------


def k_grid(max_k: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ... up to ``max_k`` (always included): dense where k is small."""
    grid, k = [1, 2, 3], 4
    while k <= max_k:
        grid += [k, k + k // 2]
        k *= 2
    return sorted({g for g in grid if g < max_k} | {max_k})


def ablation_sweep(
    meter: RefusalMeter,
    harmful: HeldOutPrompts,
    subspace: Float[Tensor, "k_max d_model"],
    *,
    max_k: int,
    threshold: float,
    seed: int,
    control: bool = True,
    controls: dict[str, Float[Tensor, "k_c d_model"]] | None = None,
) -> pd.DataFrame:
    """Refusal on harmful prompts after ablating the first k rows of ``subspace``, and its controls.

    k runs over ``k_grid`` until refusal first falls below ``threshold``; the bracket between the last k
    above and the first below is then bisected, so the first crossing is found exactly if the curve
    crosses once inside the bracket (it need not be monotone elsewhere). The random control is the first k
    rows of one uniformly random orthonormal frame (nested, like the estimated subspace); each matched
    control in ``controls`` (name -> nested rows, e.g. label-permuted patterns or harmless principal
    components) is ablated the same way. Controls are measured at k = 1 and at the crossing (or the
    largest k tried). Rows: ``condition`` (baseline | subspace | random | a control's name), ``k``.
    """
    n_layers, d_model = meter.model.n_layers, subspace.shape[1]
    largest = min(max_k, subspace.shape[0])
    frames = [_rows(harmful, meter(harmful.texts), condition="baseline", k=0)]
    rates: dict[int, float] = {}

    def measure(k: int) -> float:
        flags = meter(harmful.texts, ablation_hooks(n_layers, subspace[:k]))
        frames.append(_rows(harmful, flags, condition="subspace", k=k))
        rates[k] = float(flags.mean())
        return rates[k]

    below, above = None, 0
    for k in k_grid(largest):
        if measure(k) < threshold:
            below = k
            break
        above = k
    while below is not None and below - above > 1:  # bisect the bracket (above, below]
        middle = (above + below) // 2
        if measure(middle) < threshold:
            below = middle
        else:
            above = middle
    frames_by_name = dict(controls or {})
    if control:
        frames_by_name = {"random": random_subspace(largest, d_model, seed), **frames_by_name}
    for name, frame in frames_by_name.items():
        for k in sorted({1, below or max(rates)}):
            if k > frame.shape[0]:
                continue
            flags = meter(harmful.texts, ablation_hooks(n_layers, frame[:k]))
            frames.append(_rows(harmful, flags, condition=name, k=k))
    return pd.concat(frames, ignore_index=True)


def first_token_kl(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[Hook],
    base_logits: Float[Tensor, "n vocab"],
    *,
    batch_size: int,
) -> float:
    """Mean KL(baseline ‖ intervened) of the first reply token's distribution: the side effect of ``hooks``."""
    from mechatlas.interp.scores import kl_divergence

    logits = last_logits(model, list(texts), list(hooks), batch_size=batch_size)
    return float(kl_divergence(base_logits, logits).double().mean())


def smallest_k(
    sweep: pd.DataFrame, condition: str, *, threshold: float, n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """The smallest k whose ablation brings the refusal rate below ``threshold``, with a bootstrap CI.

    Prompts are resampled with replacement (the same resample for every k, so each resampled curve is
    a real curve). A curve that never crosses within the evaluated ks counts as ``max evaluated + 1``
    (censored); ``crossed`` says whether the point estimate crossed at all. The CI reflects which
    prompts were drawn, not the uncertainty of the estimated subspace itself.
    """
    chosen = sweep[sweep["condition"] == condition]
    curve = chosen.pivot(index="id", columns="k", values="refused")
    if curve.empty:
        return {"k": None, "crossed": False, "ci95": [None, None], "n": 0, "max_k_evaluated": 0}
    ks = np.array(sorted(curve.columns))
    flags = curve[ks].to_numpy(dtype=float)  # (prompt, k)
    censored = int(ks.max()) + 1

    def first_crossing(rows: np.ndarray) -> int:
        below = np.flatnonzero(flags[rows].mean(axis=0) < threshold)
        return int(ks[below[0]]) if len(below) else censored

    everyone = np.arange(len(flags))
    estimate = first_crossing(everyone)
    rng = np.random.default_rng(seed)
    clusters = None
    if "cluster" in chosen:
        of = chosen.drop_duplicates("id").set_index("id")["cluster"].astype(str)
        clusters = of[curve.index].to_numpy()
    if clusters is not None and len(set(clusters)) >= 2:  # resample whole clusters of prompts
        names = np.unique(clusters)
        members = [np.flatnonzero(clusters == c) for c in names]

        def resample() -> np.ndarray:
            return np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
    else:
        clusters = None

        def resample() -> np.ndarray:
            return rng.integers(0, len(flags), len(flags))

    draws = np.array([first_crossing(resample()) for _ in range(n_bootstrap)])
    units = None if clusters is None else list(clusters)
    return {
        "k": estimate if estimate != censored else None,
        "crossed": estimate != censored,
        "ci95": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))],
        "ci_censored_at": censored,
        "n": len(flags),
        "n_bootstrap": n_bootstrap,
        "max_k_evaluated": int(ks.max()),
        "interval_unit": "cluster" if units is not None else "prompt",
        "curve": {int(k): rate_over_unit(flags[:, i].astype(bool).tolist(), units) for i, k in enumerate(ks)},
    }


def causal_dimensionality(
    model: LoadedModel,
    harmful: Sequence[str],
    subspace: Float[Tensor, "k_max d_model"],
    *,
    refusal_tokens: Sequence[str] = ("I", "Sorry"),
    threshold: float = 0.25,
    max_k: int = 32,
    n_bootstrap: int = 100,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """The notebook entry point: ablate the top-k rows of ``subspace`` on ``harmful`` prompts (first-token
    judge) and return the smallest k below ``threshold`` with its bootstrap CI, the curve, and the
    random-direction control (``smallest_k`` of each)."""
    from mechatlas.interp.scores import refusal_token_ids

    meter = RefusalMeter(
        model,
        tuple(refusal_token_ids(model.tokenizer, list(refusal_tokens), model.chat_format)),
        CausalJudge.first_token,
        (),
        max_new_tokens=1,
        batch_size=batch_size,
    )
    prompts = HeldOutPrompts(
        tuple(map(str, range(len(harmful)))), tuple(harmful), tuple("-" for _ in harmful)
    )
    sweep = ablation_sweep(meter, prompts, subspace, max_k=max_k, threshold=threshold, seed=seed)
    kwargs: dict[str, Any] = {"threshold": threshold, "n_bootstrap": n_bootstrap, "seed": seed}
    return {
        "subspace": smallest_k(sweep, "subspace", **kwargs),
        "random": smallest_k(sweep, "random", **kwargs),
    }


# --- the cone check (Wollschläger et al. 2025) ----------------------------------------------------------


def _dirichlet(n: int, generator: torch.Generator) -> Tensor:
    # Normalised i.i.d. exponentials are Dirichlet(1) draws: uniform on the simplex.
    weights = -torch.log(torch.rand(n, generator=generator, dtype=torch.float64))
    return weights / weights.sum()


def _at_norm(direction: Tensor, norm: float) -> Tensor:
    d = direction.to(torch.float64)
    return d / d.norm().clamp(min=1e-30) * norm


def cone_check(
    meter: RefusalMeter,
    harmful: HeldOutPrompts,
    harmless: HeldOutPrompts,
    generators: Float[Tensor, "m d_model"],
    names: Sequence[str],
    *,
    layer: int,
    coefficient: float,
    n_samples: int,
    seed: int,
    norm: float | None = None,
    null: Float[Tensor, "draw m d_model"] | None = None,
) -> pd.DataFrame:
    """Wollschläger et al. (arXiv 2502.17420): do directions sampled from the cone each mediate refusal?

    Every direction added is first renormalised to ``norm`` (the pooled difference-in-means norm; default
    the generators' mean norm), as the paper adds cone directions at the difference-in-means scale. Each
    generator is ablated alone and added alone; their span is ablated; ``n_samples`` positive combinations
    ``Σ wᵢ gᵢ`` (Dirichlet(1) weights), renormalised, are each ablated alone on harmful prompts and added
    on harmless ones. A random direction at the same norm is the addition control. With ``null`` (per
    draw, the directions of random pseudo-domains of the real domains' sizes), one combination per draw is
    sampled the same way and measured the same way (generator ``null-j``): the null cone. Rows:
    ``condition``, ``generator`` (name, ``span``, ``combination-i``, ``null-j``, ``random``), ``label``.
    """
    n_layers = meter.model.n_layers
    g64 = generators.to(torch.float64)
    scale = float(g64.norm(dim=1).mean()) if norm is None else norm
    frames = [
        _rows(harmful, meter(harmful.texts), condition="baseline", generator="none", label="harmful"),
        _rows(harmless, meter(harmless.texts), condition="baseline", generator="none", label="harmless"),
    ]

    def both(direction: Tensor, name: str) -> None:
        frames.append(
            _rows(
                harmful,
                meter(harmful.texts, ablation_hooks(n_layers, direction)),
                condition="ablate",
                generator=name,
                label="harmful",
            )
        )
        frames.append(
            _rows(
                harmless,
                meter(harmless.texts, addition_hooks(_at_norm(direction, scale), layer, coefficient)),
                condition="add",
                generator=name,
                label="harmless",
            )
        )

    for name, g in zip(names, g64, strict=True):
        both(g, name)
    frames.append(
        _rows(
            harmful,
            meter(harmful.texts, ablation_hooks(n_layers, generators)),
            condition="ablate",
            generator="span",
            label="harmful",
        )
    )
    generator = torch.Generator().manual_seed(seed)
    for i in range(n_samples):
        both((_dirichlet(len(names), generator)[:, None] * g64).sum(dim=0), f"combination-{i}")
    for j, draw in enumerate(null if null is not None else []):
        both((_dirichlet(len(draw), generator)[:, None] * draw.to(torch.float64)).sum(dim=0), f"null-{j}")
    random = random_subspace(1, generators.shape[1], seed + 1)[0] * scale
    frames.append(
        _rows(
            harmless,
            meter(harmless.texts, addition_hooks(random, layer, coefficient)),
            condition="add",
            generator="random",
            label="harmless",
        )
    )
    return pd.concat(frames, ignore_index=True)


def effective_rank(directions: Float[Tensor, "m d_model"]) -> float:
    """Participation ratio of the squared singular values of the unit-normalised rows (1 = all parallel)."""
    unit = directions.to(torch.float64) / directions.to(torch.float64).norm(dim=1, keepdim=True).clamp(
        min=1e-30
    )
    s2 = torch.linalg.svdvals(unit) ** 2
    return float(s2.sum() ** 2 / (s2**2).sum())


# --- domains ---------------------------------------------------------------------------------------------


def ablation_by_direction(
    meter: RefusalMeter, prompts: HeldOutPrompts, directions: Float[Tensor, "m d_model"], names: Sequence[str]
) -> pd.DataFrame:
    """Refusal on ``prompts`` with each direction ablated on its own (plus the baseline)."""
    n_layers = meter.model.n_layers
    frames = [_rows(prompts, meter(prompts.texts), direction="none")]
    for name, d in zip(names, directions, strict=True):
        frames.append(_rows(prompts, meter(prompts.texts, ablation_hooks(n_layers, d)), direction=name))
    return pd.concat(frames, ignore_index=True)


def rates_by(rows: pd.DataFrame, *keys: str) -> dict[str, Any]:
    """Nested ``{key value: ... rate}`` of the ``refused`` column (CIs over clusters where rows have them,
    else Wilson)."""
    if not keys:
        return rate_of_rows(rows)
    return {str(value): rates_by(group, *keys[1:]) for value, group in rows.groupby(keys[0], sort=False)}


def steering(
    meter: RefusalMeter,
    groups: dict[str, HeldOutPrompts],
    directions: dict[str, Float[Tensor, " d_model"]],
    *,
    layer: int,
    coefficient: float,
    norm: float | None = None,
) -> pd.DataFrame:
    """Each direction ablated (everywhere) on harmful prompts and added (at ``layer``) on the others.

    With ``norm`` given, every added direction is rescaled to that norm first, so that directions read at
    different positions (whose raw differences in means can differ tenfold in size) differ only in where
    they point.
    """
    n_layers = meter.model.n_layers
    frames = [
        _rows(p, meter(p.texts), condition="baseline", direction="none", label=label)
        for label, p in groups.items()
    ]
    for name, d in directions.items():
        frames.append(
            _rows(
                groups["harmful"],
                meter(groups["harmful"].texts, ablation_hooks(n_layers, d)),
                condition="ablate",
                direction=name,
                label="harmful",
            )
        )
        added = (
            d if norm is None else d.to(torch.float64) / d.to(torch.float64).norm().clamp(min=1e-30) * norm
        )
        for label in (lab for lab in groups if lab != "harmful"):
            frames.append(
                _rows(
                    groups[label],
                    meter(groups[label].texts, addition_hooks(added, layer, coefficient)),
                    condition="add",
                    direction=name,
                    label=label,
                )
            )
    return pd.concat(frames, ignore_index=True)
