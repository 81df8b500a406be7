"""The optimised-directions stage: RDO, refusal cones, the smallest bypassing subspace, multi-direction
ablation (``mechatlas.interp.optimised``), fitted on train prompts and measured on held-out test prompts.

Four analyses, each on the same held-out prompts as the causal stage, with the same judge and intervals
(Wilson over prompts, or resampling whole clusters where prompts come in clusters):

1. ``rdo``: a direction optimised with the paper's three losses, per seed, beside the selected
   difference-in-means direction: cosine, bypass (harmful refusal with it ablated), induce (harmless
   refusal with it added at the difference-in-means norm), first-token KL and capability cost on harmless
   prompts.
2. ``cones``: for m = 2 .. max_m, an optimised cone; it *holds* when at least ``cone_share`` of its
   evaluated directions (basis vectors and fixed samples) bypass (upper end of the interval below
   ``refusal_threshold``) and induce (lower end above ``induce_threshold``). The null is the same
   optimisation against pseudo-labels: the harmful train prompts split at random into two halves, one to
   comply under ablation and one to keep refusing. No mechanism separates the halves, so a null cone that
   holds (in-sample) measures what the optimiser can fit by itself; it is judged on its own train prompts,
   and the real cone is reported on its train prompts too, beside the held-out result.
3. ``bypass``: for m = 1 .. max_m, the m-dimensional subspace whose span, ablated, removes refusal,
   unconstrained (ablation everywhere, ablation loss only) and constrained (``constraint``), with a random
   m-dimensional subspace under the same constraint as the control and the read-out's retention
   (``refusal_token_retention``) as the check that the read-out stays intact.
4. ``multi``: the span of each set of directions ablated at once (the difference in means, its per-domain
   directions, RDO, the largest cone's basis, the spectral top-k) with refusal, over-refusal and cost.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mechatlas.config import Params
from mechatlas.experiments.dimensionality.optimised_measure import Measure, TrainSet, train_set
from mechatlas.interp.optimised import (
    Batches,
    Constraint,
    Fit,
    Weights,
    cone_samples,
    optimise_cone,
    optimise_subspace,
)

EXPERIMENT = "dimensionality"


def _cosine(a: Tensor, b: Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def _mean_over(values: list[float]) -> dict[str, Any]:
    """Mean, min and max over optimisation seeds (the unit an optimised direction varies over)."""
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values)),
            "n_seeds": len(values)}  # fmt: skip


def rdo(measure: Measure, data: TrainSet, settings: Any, dim: Tensor) -> tuple[dict[str, Any], list[Fit]]:
    """RDO per seed, and the difference-in-means direction measured the same way."""
    fits = [
        optimise_cone(
            measure.hf,
            data.real,
            1,
            layer=measure.layer,
            alpha=measure.alpha,
            weights=data.weights,
            steps=settings.steps,
            lr=settings.lr,
            seed=settings.seed + s,
        )
        for s in range(settings.rdo_seeds)
    ]
    pairs = [abs(_cosine(a.basis[0], b.basis[0])) for i, a in enumerate(fits) for b in fits[i + 1 :]]
    dim_kl = measure.harmless_kl(dim)
    per_seed = [
        measure.direction(f.basis[0])
        | {
            "cosine_with_dim": _cosine(f.basis[0], dim),
            # prompt by prompt against the difference in means: the comparison the verdict rule reads
            "kl_minus_dim": measure.paired_mean(measure.harmless_kl(f.basis[0]) - dim_kl),
        }
        for f in fits
    ]
    return {
        "difference_in_means": measure.direction(dim),
        "rdo": per_seed,
        "cosine_with_dim": _mean_over([p["cosine_with_dim"] for p in per_seed]),
        # |cosine| between the directions of different seeds; None with one seed
        "cosine_between_seeds": _mean_over(pairs) if pairs else None,
    }, fits


def _cone_verdict(measured: list[dict[str, Any]], share: float) -> dict[str, Any]:
    passing = [m["bypasses"] and m["induces"] for m in measured]
    return {"share_passing": float(np.mean(passing)), "holds": bool(np.mean(passing) >= share)}


def cones(
    measure: Measure, data: TrainSet, settings: Any, dims: Any, rdo_fit: Fit
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Cones for m = 1 .. max_m (m = 1 is RDO's first seed) and the pseudo-label null for each m."""
    out: dict[str, Any] = {"real": [], "null": []}
    tensors: dict[str, Tensor] = {}
    generator = torch.Generator().manual_seed(settings.seed + 7)
    for m in range(1, settings.max_m + 1):
        for kind, batches in (("real", data.real), ("null", data.null)):
            if kind == "real" and m == 1:
                fit = rdo_fit
            else:
                fit = optimise_cone(
                    measure.hf, batches, m, layer=measure.layer, alpha=measure.alpha, weights=data.weights,
                    steps=settings.steps, lr=settings.lr, seed=settings.seed + 100 * m + (kind == "null"),
                )  # fmt: skip
            rows = cone_samples(fit.basis, m + settings.eval_samples, generator)
            if kind == "real":
                held_out = [measure.direction(r, with_cost=False) for r in rows]
                train = [measure.in_sample(r, data.train_harmful, data.train_harmless) for r in rows]
                entry = {"m": m, "held_out": _cone_verdict(held_out, dims.cone_share), "directions": held_out,
                         "train": _cone_verdict(train, dims.cone_share)}  # fmt: skip
            else:
                train = [measure.in_sample(r, data.null_bypass, data.train_harmless, keep=data.null_keep)
                         for r in rows]  # fmt: skip
                entry = {"m": m, "train": _cone_verdict(train, dims.cone_share), "directions": train}
            entry["final_loss"] = fit.losses[-1]
            out[kind].append(entry)
            tensors[f"cone_{kind}.m{m}"] = fit.basis
    for kind in ("real", "null"):
        unit = "held_out" if kind == "real" else "train"
        held = [e["m"] for e in out[kind] if e[unit]["holds"]]
        out[f"largest_m_{kind}"] = max(held) if held else 0
    out["largest_m_real_train"] = max([e["m"] for e in out["real"] if e["train"]["holds"]] or [0])
    return out, tensors


def bypass(
    measure: Measure, data: TrainSet, settings: Any, dims: Any, constraint: Constraint
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Smallest bypassing subspace against m, without and with the constraint, and its controls."""
    out: dict[str, Any] = {"constraint": constraint.describe(), "unconstrained": [], "constrained": []}
    tensors: dict[str, Tensor] = {}
    unconstrained = Batches(data.real.ablation)  # the ablation loss alone, everywhere
    constrained = Batches(data.real.ablation, retain=data.readout_retain)
    weights = Weights(ablation=data.weights.ablation, addition=0.0, retain=data.weights.retain)
    for m in range(1, settings.max_m + 1):
        for kind, batches, limit in (
            ("unconstrained", unconstrained, Constraint()),
            ("constrained", constrained, constraint),
        ):
            fit = optimise_subspace(
                measure.hf, batches, m, weights=weights, constraint=limit,
                steps=settings.steps, lr=settings.lr, seed=settings.seed + 1000 + m,
            )  # fmt: skip
            control = measure.random_subspace(m, limit, settings.seed + 2000 + m)
            out[kind].append(
                {
                    "m": m,
                    "subspace": measure.subspace(fit.basis, limit),
                    "random": measure.subspace(control, limit, full=False),
                    "final_loss": fit.losses[-1],
                }
            )
            tensors[f"bypass_{kind}.m{m}"] = fit.basis
    for kind in ("unconstrained", "constrained"):
        removed = [e["m"] for e in out[kind] if e["subspace"]["harmful"]["ci95"][1] < dims.refusal_threshold]
        out[f"smallest_m_{kind}"] = min(removed) if removed else None
    return out, tensors


def multi(measure: Measure, sets: dict[str, Tensor]) -> dict[str, Any]:
    """Each set's span ablated at every layer, with refusal, over-refusal and cost side by side."""
    return {name: measure.subspace(directions, Constraint()) for name, directions in sets.items()}


def rdo_under_other_judges(measure: Measure, fits: list[Fit], dim: Tensor) -> dict[str, Any]:
    """RDO's and the difference in means' bypass and induce on the held-out prompts under every other judge
    of ``panel_judges`` (the first-token KL they are compared on does not depend on the judge)."""
    out = {}
    for other in measure.settings.panel_judges:
        if other is measure.settings.judge:
            continue
        judged = dataclasses.replace(measure, meter=measure.meter.under(other.value))
        out[other.value] = {
            "difference_in_means": judged.direction(dim, with_cost=False),
            "rdo": [judged.direction(f.basis[0], with_cost=False) for f in fits],
        }
    return out


def optimised_stage(
    params: Params,
    name: str,
    refusal_dir: Path,
    geometry_dir: Path,
    out_dir: Path,
    *,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fit and measure every optimised direction; writes ``optimised.json`` and ``optimised.safetensors``."""
    from safetensors.torch import save_file

    from mechatlas.experiments.common import json_safe, read_direction
    from mechatlas.experiments.dimensionality.optimised_measure import open_measure
    from mechatlas.interp.threads import torch_threads
    from mechatlas.io import atomic_path, read_safetensors, write_json

    dims = params.dimensionality
    settings = dims.optimisation
    direction, info = read_direction(refusal_dir)
    subspaces = read_safetensors(
        geometry_dir / "subspaces.safetensors", "run `mechatlas dimensionality geometry` again"
    )
    layer = int(info["layer"])
    timings: dict[str, float] = {}
    with torch_threads(threads):
        measure = open_measure(params, name, direction, layer)
        start = time.perf_counter()
        data = train_set(measure, params)
        timings["targets"] = time.perf_counter() - start
        blocks = settings.constrained_blocks or layer
        constraint = Constraint(blocks=min(blocks, measure.model.n_layers), protected=measure.readout)
        start = time.perf_counter()
        rdo_part, rdo_fits = rdo(measure, data, settings, direction)
        rdo_part["judge_panel"] = rdo_under_other_judges(measure, rdo_fits, direction)
        timings["rdo"] = time.perf_counter() - start
        start = time.perf_counter()
        cone_part, cone_tensors = cones(measure, data, settings, dims, rdo_fits[0])
        timings["cones"] = time.perf_counter() - start
        start = time.perf_counter()
        bypass_part, bypass_tensors = bypass(measure, data, settings, dims, constraint)
        timings["bypass"] = time.perf_counter() - start
        largest = max(cone_part["largest_m_real"], 1)
        named = {  # the geometry stage's directions at the selected layer; a degenerate layer has none
            "difference in means per domain": subspaces.get(f"domain.layer{layer}"),
            f"spectral top {settings.spectral_k}": subspaces.get(f"spectral.layer{layer}"),
        }
        sets = {
            "difference in means (selected)": direction.double(),
            "RDO (seed 0)": rdo_fits[0].basis.double(),
        }
        sets |= {
            name: tensor[: settings.spectral_k].double() if name.startswith("spectral") else tensor.double()
            for name, tensor in named.items()
            if tensor is not None
        }
        if largest > 1:  # at m = 1 the cone is RDO's first seed, already in the table
            sets[f"cone basis (m = {largest})"] = cone_tensors[f"cone_real.m{largest}"].double()
        start = time.perf_counter()
        multi_part = multi(measure, sets)
        timings["multi"] = time.perf_counter() - start
    for part, seconds in timings.items():  # the log's, not the record's: the record is byte-reproducible
        print(f"optimised {name}: {part} {seconds:.1f} s", flush=True)
    record = {
        "experiment": EXPERIMENT,
        "model": name,
        "selected": {"layer": layer, "alpha": measure.alpha},
        "n": measure.counts() | data.counts(),
        "judge": measure.judge_description(),
        "rdo": rdo_part,
        "cones": cone_part,
        "bypass": bypass_part,
        "multi": multi_part,
        "settings": settings.model_dump(mode="json"),
    }
    tensors = {f"rdo.seed{i}": f.basis for i, f in enumerate(rdo_fits)} | cone_tensors | bypass_tensors
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "optimised.safetensors", ".safetensors") as tmp:
        save_file({k: v.to(torch.float64).contiguous() for k, v in sorted(tensors.items())}, str(tmp))
    write_json(out_dir / "optimised.json", json_safe(record))
    return record
