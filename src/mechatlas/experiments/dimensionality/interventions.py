"""The causal stage's analyses: every intervention it runs on held-out test prompts, one function each.

``causal_analyses`` runs them in a fixed order on what the geometry stage saved (``geometry.json`` and
the tensors of ``subspaces.safetensors``) and returns the summary written to ``causal.json`` and the
per-prompt rows written to ``causal.parquet``. Each analysis returns its part of the summary and its
rows, tagged with an ``analysis`` column:

1. ``spectral_sweep``: per source layer, the causal dimension of the top-k spectral subspace against k
   random directions, and the side effect of ablating each (``HarmlessBaseline.kl``, the first-token
   KL on harmless prompts); ``probe_sweep`` and ``pooled_ablation`` compare the INLP directions and the
   difference in means at the selected layer.
2. ``cone_analysis``: the cone check (Wollschläger et al., arXiv 2502.17420) with the per-domain
   directions as generators.
3. ``domain_transfer``: the cross-domain transfer matrix and leave-one-domain-out ablation, reusing the
   cone check's single-direction ablations.
4. ``harmfulness_steering``: the harmfulness (last instruction token) versus refusal (post-instruction)
   directions, ablated and added at the same norm (Zhao et al., arXiv 2507.11878).
5. ``judge_agreement``: how well the one-pass first-token judge agrees with generated replies.

The interventions themselves (directional ablation at every layer, activation addition; Arditi et al.,
arXiv 2406.11717) are ``mechatlas.experiments.dimensionality.causal``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments.dimensionality.causal import (
    HeldOutPrompts,
    _rows,
    ablation_by_direction,
    ablation_sweep,
    cone_check,
    effective_rank,
    first_token_kl,
    rate_of_rows,
    rates_by,
    smallest_k,
    steering,
)
from mechatlas.experiments.dimensionality.transfer import transfer_gap, transfer_matrix
from mechatlas.interp.directions import random_subspace
from mechatlas.interp.hooks import Hook
from mechatlas.interp.interventions import ablation_hooks
from mechatlas.interp.judges import RefusalMeter
from mechatlas.interp.scores import last_logits
from mechatlas.stats import percentile_ci

TEST_PROMPTS = "test split, at most n_causal_prompts per group, spread over domains"


@dataclass(frozen=True)
class HarmlessBaseline:
    """The harmless test prompts and their unhooked first-token logits, to measure side effects against."""

    meter: RefusalMeter
    prompts: HeldOutPrompts
    logits: Float[Tensor, "n vocab"]
    batch_size: int

    def kl(self, directions: Float[Tensor, "k d_model"]) -> float:
        """Mean first-token KL on the harmless prompts of ablating ``directions`` at every layer."""
        model = self.meter.model
        hooks = ablation_hooks(model.n_layers, directions)
        return first_token_kl(model, self.prompts.texts, hooks, self.logits, batch_size=self.batch_size)


def _k_kwargs(settings: DimensionalitySettings) -> dict[str, Any]:
    return {
        "threshold": settings.refusal_threshold,
        "n_bootstrap": settings.n_bootstrap,
        "seed": settings.seed,
    }


def spectral_sweep(
    harmless: HarmlessBaseline,
    harmful: HeldOutPrompts,
    subspace: Float[Tensor, "k_max d_model"],
    *,
    layer: int,
    settings: DimensionalitySettings,
    controls: dict[str, Float[Tensor, "k_c d_model"]] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The causal dimension of one layer's top-k spectral subspace, its controls and side effects.

    Controls: k uniformly random directions (``random``) and the matched ``controls`` (label-permuted
    spectral patterns, harmless principal components), each ablated at k = 1 and at the k found, each
    with its own interval (``controls``). The side effect (first-token KL on harmless prompts, the damage
    gate's number) is measured at the k found, or at the largest k evaluated when refusal never fell
    below the threshold.
    """
    sweep = ablation_sweep(
        harmless.meter,
        harmful,
        subspace,
        seed=settings.seed + layer,
        max_k=settings.max_k,
        threshold=settings.refusal_threshold,
        controls=controls,
    )
    rows = sweep.assign(analysis="sweep", estimator="spectral", layer=layer, label="harmful")
    found = smallest_k(sweep, "subspace", **_k_kwargs(settings))
    k_side = found["k"] or found["max_k_evaluated"]
    control_k = int(sweep.loc[sweep["condition"] == "random", "k"].max())
    summary = {
        "spectral": found,
        "random": smallest_k(sweep, "random", **_k_kwargs(settings)),
        "controls": {name: smallest_k(sweep, name, **_k_kwargs(settings)) for name in controls or {}},
        "harmless_kl": {
            "k": k_side,
            "spectral": harmless.kl(subspace[:k_side]),
            "random": harmless.kl(
                random_subspace(control_k, harmless.meter.model.d_model, settings.seed + layer)[:k_side]
            ),
        },
    }
    return summary, rows


def probe_sweep(
    meter: RefusalMeter,
    harmful: HeldOutPrompts,
    directions: Float[Tensor, "k_max d_model"],
    *,
    layer: int,
    settings: DimensionalitySettings,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The causal dimension of the INLP directions at ``layer`` (no random control: the spectral has one)."""
    sweep = ablation_sweep(
        meter,
        harmful,
        directions,
        seed=settings.seed,
        control=False,
        max_k=settings.max_k,
        threshold=settings.refusal_threshold,
    )
    sweep = sweep[sweep["condition"] != "baseline"]
    rows = sweep.assign(analysis="sweep", estimator="probe", layer=layer, label="harmful")
    return smallest_k(sweep, "subspace", **_k_kwargs(settings)), rows


def pooled_ablation(
    meter: RefusalMeter, harmful: HeldOutPrompts, pooled: Float[Tensor, " d_model"]
) -> pd.DataFrame:
    """Refusal on harmful prompts with the pooled difference-in-means direction ablated (no baseline rows)."""
    rows = ablation_by_direction(meter, harmful, pooled[None], ["pooled"])
    return rows[rows["direction"] != "none"]


def cone_analysis(
    meter: RefusalMeter,
    harmful: HeldOutPrompts,
    harmless: HeldOutPrompts,
    generators: Float[Tensor, "m d_model"],
    names: Sequence[str],
    *,
    layer: int,
    coefficient: float,
    settings: DimensionalitySettings,
    norm: float | None = None,
    null: Float[Tensor, "draw m d_model"] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The cone check with the per-domain directions as generators, beside the null cone of pseudo-domains.

    Summary: rates by label, condition and generator (the null cone's ``null-j`` apart, under ``null``),
    the generators' effective rank and each null draw's, and for the sampled combinations and the null
    cone's samples the share that bypasses (harmful refusal below ``refusal_threshold`` when ablated) and
    the share that induces (harmless refusal at or above ``induce_threshold`` when added at ``norm``).
    """
    cone = cone_check(
        meter,
        harmful,
        harmless,
        generators,
        names,
        layer=layer,
        coefficient=coefficient,
        n_samples=settings.cone_samples,
        seed=settings.seed,
        norm=norm,
        null=null,
    )
    is_null = cone["generator"].str.startswith("null-")
    rates = rates_by(cone[~is_null], "label", "condition", "generator")
    null_rates = rates_by(cone[is_null], "label", "condition", "generator") if is_null.any() else {}

    def shares(found: dict[str, Any], prefix: str) -> dict[str, Any]:
        ablated = [v for k, v in found.get("harmful", {}).get("ablate", {}).items() if k.startswith(prefix)]
        added = [v for k, v in found.get("harmless", {}).get("add", {}).items() if k.startswith(prefix)]
        return {
            "n": len(ablated),
            "bypass": float(np.mean([r["value"] < settings.refusal_threshold for r in ablated]))
            if ablated
            else None,
            "induce": float(np.mean([r["value"] >= settings.induce_threshold for r in added]))
            if added
            else None,
        }

    summary = {
        "generators": names,
        "effective_rank": effective_rank(generators),
        "rates": rates,
        "coefficient": coefficient,
        "added_norm": norm,
        "sampled": shares(rates, "combination-"),
        "null": {
            "effective_rank": [effective_rank(draw) for draw in (null if null is not None else [])],
            "sampled": shares(null_rates, "null-"),
            "rates": null_rates,
        },
    }
    return summary, cone


def _rate_of(rows: pd.DataFrame, direction: str, domain: str) -> dict[str, Any]:
    return rate_of_rows(rows[(rows["direction"] == direction) & (rows["domain"] == domain)])


def domain_transfer(
    meter: RefusalMeter,
    harmful: HeldOutPrompts,
    cone: pd.DataFrame,
    lodo_directions: Float[Tensor, "m d_model"],
    names: Sequence[str],
    pooled: pd.DataFrame,
    *,
    settings: DimensionalitySettings | None = None,
    null: Float[Tensor, "draw m d_model"] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """The transfer matrix (domain A's direction ablated, refusal on domain B) and leave-one-domain-out.

    The transfer matrix's rows are the cone check's single-direction ablations (``cone``); ``pooled`` holds
    the pooled direction's ablation rows. With ``settings``, the transfer gap gets a bootstrap CI over
    clusters (framings) within domains and a permutation test of the domain labels (``transfer_gap``);
    with ``null`` too, each pseudo-domain draw's directions are ablated and the
    gap is computed with the test prompts' domain labels shuffled (same sizes): the null distribution of
    the gap, summarised by its 95th percentile. Returns the transfer summary, the per-domain leave-one-out
    summary and the leave-one-out rows.
    """
    own = cone[(cone["label"] == "harmful") & cone["condition"].isin(["baseline", "ablate"])]
    own = own.assign(direction=own["generator"])
    lodo = ablation_by_direction(meter, harmful, lodo_directions, names)
    lodo = lodo[lodo["direction"] != "none"]
    targets = sorted(set(harmful.domains))
    transfer = transfer_matrix(own, names, targets)
    transfer["baseline"] = [_rate_of(own, "none", t) for t in targets]
    transfer["pooled"] = [_rate_of(pooled, "pooled", t) for t in targets]
    if settings is not None:
        ablated = own[own["direction"].isin(names)]
        transfer["gap"] = transfer_gap(
            ablated,
            names,
            n_bootstrap=settings.n_bootstrap,
            seed=settings.seed,
            n_permutations=settings.n_permutations,
        )
        gaps = []
        rng = np.random.default_rng(settings.seed)
        for j, draw in enumerate(null if null is not None else []):
            pseudo = [f"pseudo-{j}-{i}" for i in range(len(draw))]
            rows = ablation_by_direction(meter, harmful, draw, pseudo)
            shuffled = dict(zip(harmful.ids, rng.permutation(np.asarray(harmful.domains)), strict=True))
            relabel = {i: pseudo[names.index(d)] if d in names else d for i, d in shuffled.items()}
            gaps.append(
                transfer_gap(rows, pseudo, n_bootstrap=0, seed=settings.seed, domain_of=relabel)["value"]
            )
        finite = [g for g in gaps if np.isfinite(g)]
        transfer["null_gap"] = {
            "values": gaps,
            "p95": float(np.percentile(finite, 95)) if finite else None,
            "ci95": list(percentile_ci(np.array(finite))),
            "n_draws": len(gaps),
        }
    by_domain = {
        d: {
            "own_direction": _rate_of(own, d, d),
            "leave_one_out_direction": _rate_of(lodo, d, d),
            "pooled_direction": _rate_of(pooled, "pooled", d),
            "baseline": _rate_of(own, "none", d),
        }
        for d in names
        if d in targets
    }
    return transfer, by_domain, lodo


def harmfulness_steering(
    meter: RefusalMeter,
    groups: dict[str, HeldOutPrompts],
    directions: dict[str, Float[Tensor, " d_model"]],
    *,
    layer: int,
    coefficient: float,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The harmfulness and refusal directions ablated and added, both at the refusal direction's norm.

    Added at the same norm, the two directions differ only in where they point.
    """
    added_norm = float(directions["post_instruction"].norm())
    steer = steering(meter, groups, directions, layer=layer, coefficient=coefficient, norm=added_norm)
    summary = {
        "rates": rates_by(steer, "condition", "direction", "label"),
        "raw_norms": {k: float(v.norm()) for k, v in directions.items()},
        "added_norm": added_norm,
    }
    return summary, steer


def _agreement(meter: RefusalMeter, texts: Sequence[str], hooks: Sequence[Hook]) -> dict[str, Any]:
    one_pass = meter(texts, hooks)
    generated = meter.by_substring(texts, hooks)
    return {
        "n": len(texts),
        "agreement": float((one_pass == generated).mean()) if len(texts) else None,
        "first_token_rate": float(one_pass.mean()) if len(texts) else None,
        "substring_rate": float(generated.mean()) if len(texts) else None,
    }


def judge_agreement(
    meter: RefusalMeter,
    harmful: HeldOutPrompts,
    harmless: HeldOutPrompts,
    spectral: Float[Tensor, "k_max d_model"],
    k_hat: int,
) -> dict[str, Any]:
    """Agreement of the first-token judge with generated replies: at baseline and under top-k ablation."""
    checks = {
        "baseline harmful": (harmful.texts, []),
        "baseline harmless": (harmless.texts, []),
        f"spectral top-{k_hat} ablation, harmful": (
            harmful.texts,
            ablation_hooks(meter.model.n_layers, spectral[:k_hat]),
        ),
    }
    return {check: _agreement(meter, texts, hooks) for check, (texts, hooks) in checks.items()}


def causal_analyses(
    meter: RefusalMeter,
    prompts: dict[str, HeldOutPrompts],
    geo: dict[str, Any],
    tensors: dict[str, Tensor],
    *,
    settings: DimensionalitySettings,
    coefficient: float,
    batch_size: int,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Every intervention analysis, in order; the ``causal.json`` summary and the per-prompt rows.

    An analysis runs only where the geometry stage saved what it needs: a spectral subspace for a
    layer's sweep, and at the selected layer INLP directions, the pooled direction, per-domain directions
    (two or more domains with enough prompts) and the two harmfulness-versus-refusal directions.
    """
    layer = int(geo["selected"]["layer"])
    harmful, harmless = prompts["harmful"], prompts["harmless"]
    baseline_logits = last_logits(meter.model, list(harmless.texts), batch_size=batch_size)
    harmless_baseline = HarmlessBaseline(meter, harmless, baseline_logits, batch_size)
    summary: dict[str, Any] = {
        "selected_layer": layer,
        "judge": settings.judge.value,
        "baseline": {group: rate_of_rows(_rows(p, meter(p.texts))) for group, p in prompts.items() if p.ids},
        "interval_unit": "organism framing or source set (cluster bootstrap)"
        if any(p.clusters is not None for p in prompts.values())
        else "prompt (Wilson)",
        "sweeps": {},
    }
    frames: list[pd.DataFrame] = []
    for source_layer in geo["layers"]:
        subspace = tensors.get(f"spectral.layer{source_layer}")
        if subspace is None or subspace.shape[0] == 0:
            summary["sweeps"][str(source_layer)] = {"degenerate": True}
            continue
        controls = {
            name: tensors[f"{key}.layer{source_layer}"]
            for name, key in (("label_permuted", "permuted"), ("harmless_pcs", "harmless_pcs"))
            if f"{key}.layer{source_layer}" in tensors
        }
        sweep, rows = spectral_sweep(
            harmless_baseline, harmful, subspace, layer=source_layer, settings=settings, controls=controls
        )
        summary["sweeps"][str(source_layer)] = sweep
        frames.append(rows)
    swept = "spectral" in summary["sweeps"].get(str(layer), {})
    inlp = tensors.get(f"inlp.layer{layer}")
    if inlp is not None and inlp.shape[0] > 0 and swept:
        summary["sweeps"][str(layer)]["probe"], rows = probe_sweep(
            meter, harmful, inlp, layer=layer, settings=settings
        )
        frames.append(rows)
    pooled = pd.DataFrame(columns=["id", "domain", "refused", "direction"])
    if f"pooled.layer{layer}" in tensors:  # absent when the selected layer is degenerate
        pooled = pooled_ablation(meter, harmful, tensors[f"pooled.layer{layer}"])
        frames.append(pooled.assign(analysis="pooled", layer=layer, label="harmful"))
        summary["difference_in_means_ablation"] = rates_by(pooled)
    if f"domain.layer{layer}" in tensors:
        names = geo["domains"][str(layer)]["domains"]
        null = tensors.get(f"null_domain.layer{layer}")
        pooled_direction = tensors.get(f"pooled.layer{layer}")
        summary["cone"], cone = cone_analysis(
            meter,
            harmful,
            harmless,
            tensors[f"domain.layer{layer}"],
            names,
            layer=layer,
            coefficient=coefficient,
            settings=settings,
            norm=float(pooled_direction.norm()) if pooled_direction is not None else None,
            null=null,
        )
        frames.append(cone.assign(analysis="cone", layer=layer))
        summary["transfer"], summary["lodo"], lodo = domain_transfer(
            meter, harmful, cone, tensors[f"lodo.layer{layer}"], names, pooled, settings=settings, null=null
        )
        frames.append(lodo.assign(analysis="lodo", layer=layer, label="harmful"))
    directions = {
        key: tensors[f"{key}.layer{layer}"]
        for key in ("instruction", "post_instruction")
        if f"{key}.layer{layer}" in tensors
    }
    if len(directions) == 2:  # absent when the selected layer is degenerate
        groups = {g: prompts[g] for g in ("harmful", "harmless", "alarming") if prompts[g].ids}
        summary["harmfulness"], steer = harmfulness_steering(
            meter, groups, directions, layer=layer, coefficient=coefficient
        )
        frames.append(steer.assign(analysis="harmfulness", layer=layer))
    if meter.judge == "first_token" and swept:  # not in a panel pass that generates anyway
        k_hat = summary["sweeps"][str(layer)]["spectral"]["k"] or 1
        summary["judge_agreement"] = judge_agreement(
            meter, harmful, harmless, tensors[f"spectral.layer{layer}"], k_hat
        )
    summary["n"] = {g: len(p.ids) for g, p in prompts.items()}
    summary["test_prompts"] = TEST_PROMPTS
    return summary, pd.concat(frames, ignore_index=True)
