"""Harmfulness versus refusal directions at one layer (Zhao et al., arXiv 2507.11878).

``harmfulness_fit_rows`` picks the prompts the directions are fitted on (train) and read on (val).
``harmfulness_versus_refusal`` compares the difference-in-means direction at the last instruction token
(harmfulness) with the one at the post-instruction position (refusal): held-out AUCs, where the
alarming-but-harmless controls project on each, and a paired bootstrap of their cosine and of the
difference in where the controls sit; every interval resamples whole clusters (organism framings)
within each group of prompts where the prompts come in clusters. ``harmfulness_by_layer`` runs it at every layer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments.dimensionality.groups import PromptGroups
from mechatlas.experiments.dimensionality.layers import _degenerate
from mechatlas.experiments.dimensionality.resampling import (
    GroupClusters,
    grouped_bootstrap,
    grouped_resamples,
    interval_unit,
)
from mechatlas.interp.geometry.projections import auc
from mechatlas.stats import basic_bootstrap, percentile_ci


def harmfulness_fit_rows(groups: PromptGroups) -> tuple[dict[str, np.ndarray], bool]:
    """The harmful and harmless rows the directions are fitted on, and whether any are held out.

    Directions are fitted on the train prompts and read on the val ones; with fewer than two train or
    two val prompts in a class there is nothing to keep apart, and both use every prompt.
    """
    fit_rows = {
        label: np.flatnonzero(getattr(groups, label)["split"].to_numpy() == "train")
        for label in ("harmful", "harmless")
    }
    held_out = all(
        2 <= len(fit_rows[label]) <= len(getattr(groups, label)) - 2 for label in ("harmful", "harmless")
    )
    if not held_out:
        fit_rows = {label: np.arange(len(getattr(groups, label))) for label in ("harmful", "harmless")}
    return fit_rows, held_out


def _projections(acts: Float[Tensor, "_ d_model"], rows: np.ndarray, direction: Tensor) -> np.ndarray:
    """Scalar projections of ``acts[rows]`` onto the unit ``direction``, in float64."""
    unit = direction.double() / direction.double().norm().clamp(min=1e-30)
    return (acts[torch.from_numpy(np.asarray(rows, dtype=np.int64))].double() @ unit).numpy()


def _position(probe: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Where ``probe``'s mean sits between ``low``'s mean (0) and ``high``'s (1); NaN without a span."""
    if min(len(probe), len(low), len(high)) == 0:
        return math.nan
    span = high.mean() - low.mean()
    return float((probe.mean() - low.mean()) / span) if abs(span) > 1e-12 else math.nan


def _auc(groups: Sequence[np.ndarray]) -> float:
    return auc(groups[0], groups[1])


def _mean(groups: Sequence[np.ndarray]) -> float:
    return float(groups[0].mean()) if len(groups[0]) else math.nan


def _direction(acts: dict[str, Tensor], harmful_rows: np.ndarray, harmless_rows: np.ndarray) -> Tensor:
    """Difference in means of ``harmful_rows`` and ``harmless_rows`` (float64)."""
    pick = {
        k: torch.from_numpy(np.asarray(r, dtype=np.int64))
        for k, r in (("h", harmful_rows), ("b", harmless_rows))
    }
    return acts["harmful"][pick["h"]].double().mean(0) - acts["harmless"][pick["b"]].double().mean(0)


def harmfulness_versus_refusal(
    instruction: dict[str, Float[Tensor, "_ d_model"]],
    post: dict[str, Float[Tensor, "_ d_model"]],
    fit_rows: dict[str, np.ndarray],
    alarming_refused: np.ndarray,
    settings: DimensionalitySettings,
    clusters: GroupClusters | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Zhao et al. (arXiv 2507.11878) at one layer: the instruction-token versus post-instruction direction.

    ``instruction`` and ``post`` hold activations of the same prompts (``harmful``, ``harmless``,
    ``alarming``) at the two positions. Directions are differences in means over the ``fit_rows`` of
    harmful and harmless (train split); projections are read on the other rows (val) and on every
    alarming prompt, which no direction was fitted on. Relative position 0 is the harmless mean, 1 the
    harmful mean. Two AUCs per direction: held-out harmful versus harmless ("does it read harmfulness?"),
    and, among the alarming controls, refused versus complied (``alarming_refused``, from the refusal
    score the refusal stage saved: "does it read the decision to refuse?").

    Every interval resamples whole ``clusters`` (organism framings, or source sets) within each group of
    prompts, and prompts one by one where none are given; each record names its ``interval_unit``. The
    cosine and the difference in where the alarming controls sit come from one paired bootstrap: each
    resample draws the fit and the held-out prompts, refits both directions on the same draw and reads
    the same held-out prompts on both.
    """
    out: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    unit = "prompt" if clusters is None else clusters.unit
    boot = functools.partial(
        grouped_bootstrap, unit=unit, n_resamples=settings.n_bootstrap, seed=settings.seed
    )

    def of(*groups: tuple[str, np.ndarray]) -> list[list[str]] | None:
        return None if clusters is None else [clusters.rows(label, rows) for label, rows in groups]

    held = {
        label: np.setdiff1d(np.arange(len(post[label])), fit_rows.get(label, np.array([], dtype=int)))
        for label in ("harmful", "harmless", "alarming")
    }
    in_sample = False
    for label in ("harmful", "harmless"):
        if len(held[label]) == 0:  # fitted on every prompt (see harmfulness_fit_rows): project in-sample
            held[label], in_sample = fit_rows[label], True
    refused = np.asarray(alarming_refused, dtype=bool)[held["alarming"]]
    for name, acts in (("instruction", instruction), ("post_instruction", post)):
        direction = _direction(acts, fit_rows["harmful"], fit_rows["harmless"])
        tensors[name] = direction
        values = {label: _projections(acts[label], held[label], direction) for label in held}
        projection = {}
        for label in held:
            summary = boot([values[label]], of((label, held[label])), _mean)
            projection[label] = {"mean": summary.pop("value"), "n": summary.pop("n")[0], **summary}
        out[name] = {
            "harmful_vs_harmless_auc": boot(
                [values["harmful"], values["harmless"]],
                of(("harmful", held["harmful"]), ("harmless", held["harmless"])),
                _auc,
            ),
            "alarming_refused_vs_complied_auc": boot(
                [values["alarming"][refused], values["alarming"][~refused]],
                of(("alarming", held["alarming"][refused]), ("alarming", held["alarming"][~refused])),
                _auc,
            ),
            "norm": float(direction.norm()),
            "projection": projection,
            "alarming_relative_position": boot(
                [values["alarming"], values["harmless"], values["harmful"]],
                of(*((label, held[label]) for label in ("alarming", "harmless", "harmful"))),
                lambda groups: _position(*groups),
            ),
        }
    # The paired bootstrap: groups are the fit prompts of each class, the held-out ones (unless the
    # directions were fitted on every prompt) and the alarming controls, each resampled by cluster.
    groups = [("harmful", fit_rows["harmful"]), ("harmless", fit_rows["harmless"])]
    if not in_sample:
        groups += [("harmful", held["harmful"]), ("harmless", held["harmless"])]
    groups.append(("alarming", held["alarming"]))
    cosines, differences = [], []
    for picks in grouped_resamples(
        [len(rows) for _, rows in groups], of(*groups), n_resamples=settings.n_bootstrap, seed=settings.seed
    ):
        drawn = [rows[pick] for (_, rows), pick in zip(groups, picks, strict=True)]
        held_h, held_b = drawn[:2] if in_sample else drawn[2:4]
        dirs, positions = [], []
        for acts in (instruction, post):
            dirs.append(_direction(acts, drawn[0], drawn[1]))
            positions.append(
                _position(
                    *(
                        _projections(acts[label], rows, dirs[-1])
                        for label, rows in (
                            ("alarming", drawn[-1]),
                            ("harmless", held_b),
                            ("harmful", held_h),
                        )
                    )
                )
            )
        cosines.append(float(torch.nn.functional.cosine_similarity(dirs[0], dirs[1], dim=0)))
        differences.append(positions[0] - positions[1])
    cosine = float(
        torch.nn.functional.cosine_similarity(tensors["instruction"], tensors["post_instruction"], dim=0)
    )
    # A cosine of two noisy directions is biased towards 0 and each resample biases it again: the
    # bias-corrected estimate and its basic interval (a percentile interval can miss the estimate).
    out["cosine"] = basic_bootstrap(cosine, cosines, bounds=(-1.0, 1.0)) | interval_unit(
        of(*groups[:2]), unit
    )
    diff = np.array(differences)
    diff = diff[np.isfinite(diff)]
    out["alarming_position_difference"] = {
        "value": out["instruction"]["alarming_relative_position"]["value"]
        - out["post_instruction"]["alarming_relative_position"]["value"],
        "ci95": list(percentile_ci(diff)),
        "n_bootstrap": len(diff),
        **interval_unit(of(*groups), unit),
        "meaning": "relative position on the instruction-token direction minus on the post-instruction one",
    }
    return out, tensors


def harmfulness_by_layer(
    instruction: dict[str, Float[Tensor, "_ layer d_model"]],
    post: dict[str, Float[Tensor, "_ layer d_model"]],
    fit_rows: dict[str, np.ndarray],
    alarming_refused: np.ndarray,
    settings: DimensionalitySettings,
    clusters: GroupClusters | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``harmfulness_versus_refusal`` at every layer where the harmful activations vary, by layer; and
    its two directions per layer (``instruction.layerL``, ``post_instruction.layerL``)."""
    summaries: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for layer in range(next(iter(post.values())).shape[1]):
        at_layer = ({k: v[:, layer] for k, v in acts.items()} for acts in (instruction, post))
        inst, post_at = at_layer
        if _degenerate(inst["harmful"]) or _degenerate(post_at["harmful"]):
            summaries[str(layer)] = {"degenerate": True}
            continue
        summary, zhao_tensors = harmfulness_versus_refusal(
            inst, post_at, fit_rows, alarming_refused, settings, clusters
        )
        summaries[str(layer)] = summary
        tensors |= {f"{key}.layer{layer}": value.contiguous() for key, value in zhao_tensors.items()}
    return summaries, tensors
