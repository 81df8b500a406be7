"""Dimensionality per layer from activations alone: spectral (parallel analysis) and INLP estimates.

``dimensionality_per_layer`` runs both estimators of ``mechatlas.interp.geometry.dimensionality`` on the
harmful and harmless activations at every layer, with bootstrap CIs, and skips degenerate layers (every
prompt with one activation, as at layer 0 of a template token: ``_degenerate``). ``_estimator_kwargs``
and ``_spectral_only`` turn the settings into the estimators' arguments; ``dimensionality_table`` runs it
at every analysed position and keeps the selected position's directions for the causal stage, with their
matched controls (``control_subspaces``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments.dimensionality.groups import PromptGroups
from mechatlas.interp.activations import ActivationStore
from mechatlas.interp.geometry.controls import label_permuted_patterns, principal_components
from mechatlas.interp.geometry.detection import detection_limits, signal_strength
from mechatlas.interp.geometry.dimensionality import Dimensionality, Method, subspace_dimensionality
from mechatlas.interp.geometry.inlp import EstimatorDeclined, ProbeFit

# --- stage 2: geometry from activations alone -----------------------------------------------------------


def _estimator_kwargs(settings: DimensionalitySettings) -> dict[str, Any]:
    return {
        "n_bootstrap": settings.n_bootstrap,
        "n_permutations": settings.n_permutations,
        "max_k": settings.probe_max_k,
        "max_rank": settings.spectral_max_rank,
        "ridge": settings.spectral_ridge,
        "probe_l2": settings.probe_l2,
        "probe_chance_margin": settings.probe_chance_margin,
        "probe_holdout": settings.probe_holdout,
    }


def _spectral_only(settings: DimensionalitySettings) -> dict[str, Any]:
    kwargs = _estimator_kwargs(settings)
    return {k: kwargs[k] for k in ("n_bootstrap", "n_permutations", "max_k", "max_rank", "ridge")}


def _degenerate(x: Tensor) -> bool:
    """True when every prompt has (numerically) the same activation, as at layer 0 of a template token."""
    return bool((x - x.mean(dim=0)).abs().max() <= 1e-6 * max(float(x.abs().max()), 1e-30))


def dimensionality_per_layer(
    harmful: Float[Tensor, "n_harmful layer d_model"],
    harmless: Float[Tensor, "n_harmless layer d_model"],
    settings: DimensionalitySettings,
) -> tuple[list[dict[str, Any]], dict[int, Dimensionality]]:
    """Spectral and INLP estimates at every layer; rows for the table, and the spectral fits by layer."""
    rows: list[dict[str, Any]] = []
    spectral: dict[int, Dimensionality] = {}
    for layer in range(harmful.shape[1]):
        h, b = harmful[:, layer], harmless[:, layer]
        if _degenerate(torch.cat([h, b])):
            for estimator in ("spectral", "probe"):
                rows.append(
                    {"layer": layer, "estimator": estimator, "degenerate": True, "k": 0, "ci95": [0, 0]}
                )
            continue
        methods: tuple[Method, ...] = ("spectral", "probe")
        for estimator in methods:
            try:
                result = subspace_dimensionality(
                    h, b, method=estimator, seed=settings.seed, **_estimator_kwargs(settings)
                )
            except EstimatorDeclined as declined:  # INLP at d >= n: recorded, not counted
                rows.append(
                    {
                        "layer": layer,
                        "estimator": estimator,
                        "degenerate": False,
                        "declined": str(declined),
                        "k": None,
                        "ci95": [None, None],
                        "n_harmful": len(h),
                        "n_harmless": len(b),
                    }
                )
                continue
            rows.append({"layer": layer, "estimator": estimator, "degenerate": False, **result.summary()})
            if isinstance(result.fit, ProbeFit):
                rows[-1]["directions"] = result.fit.directions  # kept for the causal stage, dropped from JSON
            else:
                spectral[layer] = result
    return rows, spectral


def control_subspaces(
    harmful: Float[Tensor, "n_harmful layer d_model"],
    harmless: Float[Tensor, "n_harmless layer d_model"],
    layers: Sequence[int],
    settings: DimensionalitySettings,
) -> dict[str, Tensor]:
    """The matched controls of each layer's top-k spectral subspace (``mechatlas.interp.geometry.controls``):
    the spectral patterns after shuffling the labels (``permuted.layerL``) and the top principal components
    of the harmless activations (``harmless_pcs.layerL``), ``max_k`` rows each."""
    out: dict[str, Tensor] = {}
    for layer in layers:
        h, b = harmful[:, layer], harmless[:, layer]
        out[f"permuted.layer{layer}"] = label_permuted_patterns(
            h,
            b,
            settings.max_k,
            seed=settings.seed + layer,
            max_rank=settings.spectral_max_rank,
            ridge=settings.spectral_ridge,
        )
        out[f"harmless_pcs.layer{layer}"] = principal_components(b, settings.max_k)
    return out


def dimensionality_table(
    saved: ActivationStore,
    groups: PromptGroups,
    position_indices: Sequence[int],
    selected: int,
    settings: DimensionalitySettings,
) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """``dimensionality_per_layer`` at every analysed position: the table's rows, and at the selected
    position the INLP directions and top ``max_k`` spectral patterns per layer (``inlp.layerL``,
    ``spectral.layerL``) for the causal stage."""
    table: list[dict[str, Any]] = []
    tensors: dict[str, Tensor] = {}
    spectral_at_selected: dict[int, Dimensionality] = {}
    for p in position_indices:
        rows, spectral = dimensionality_per_layer(
            saved.resid(groups.harmful, p), saved.resid(groups.harmless, p), settings
        )
        for row in rows:
            row |= {
                "position": saved.positions[p],
                "token": saved.position_tokens[p],
                "selected": p == selected,
            }
            directions = row.pop("directions", None)
            if p == selected and directions is not None:
                tensors[f"inlp.layer{row['layer']}"] = directions.contiguous()
        table += rows
        if p == selected:
            spectral_at_selected = spectral
    for layer, result in spectral_at_selected.items():
        tensors[f"spectral.layer{layer}"] = result.fit.patterns[: settings.max_k].contiguous()  # type: ignore[union-attr]
    tensors |= control_subspaces(
        saved.resid(groups.harmful, selected),
        saved.resid(groups.harmless, selected),
        sorted(spectral_at_selected),
        settings,
    )
    return table, tensors


def detection_at_selected(
    harmful: Float[Tensor, "n_harmful layer d_model"],
    harmless: Float[Tensor, "n_harmless layer d_model"],
    layer: int,
    table: Sequence[dict[str, Any]],
    settings: DimensionalitySettings,
) -> dict[str, Any] | None:
    """The estimators' detection limits at the selected layer (``mechatlas.interp.geometry.detection``):
    planted k = 1..8 at the study's prompts per class (the smaller class), width and measured d′, with
    the same estimator settings; ``found`` is what each estimator found there on the model. None when
    the layer's activations do not vary."""
    h, b = harmful[:, layer], harmless[:, layer]
    if _degenerate(torch.cat([h, b])):
        return None
    kwargs = {k: v for k, v in _estimator_kwargs(settings).items() if k != "n_bootstrap"}
    out = detection_limits(
        n_per_class=min(len(h), len(b)),
        d_model=h.shape[1],
        separation=signal_strength(h, b),
        seed=settings.seed,
        **kwargs,
    )
    found = {
        str(row["estimator"]): row["k"]
        for row in table
        if row["layer"] == layer and row.get("selected") and not row.get("degenerate")
    }
    return {**out, "layer": layer, "found": found}
