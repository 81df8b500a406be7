"""Harmfulness versus refusal directions at one layer (Zhao et al., arXiv 2507.11878).

``harmfulness_fit_rows`` picks the prompts the directions are fitted on (train) and read on (val).
``harmfulness_versus_refusal`` compares the difference-in-means direction at the last instruction token
(harmfulness) with the one at the post-instruction position (refusal): held-out AUCs, where the
alarming-but-harmless controls project on each, and a paired bootstrap of their cosine and of the
difference in where the controls sit. ``harmfulness_by_layer`` runs it at every layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments.dimensionality.groups import PromptGroups
from mechatlas.experiments.dimensionality.layers import _degenerate
from mechatlas.interp.geometry.projections import auc_with_ci, projection_summary, relative_position
from mechatlas.stats import basic_bootstrap, percentile_ci, stratified_cluster_resamples


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


def harmfulness_versus_refusal(
    instruction: dict[str, Float[Tensor, "_ d_model"]],
    post: dict[str, Float[Tensor, "_ d_model"]],
    fit_rows: dict[str, np.ndarray],
    alarming_refused: np.ndarray,
    settings: DimensionalitySettings,
    clusters: tuple[Sequence[str], Sequence[str]] | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Zhao et al. (arXiv 2507.11878) at one layer: the instruction-token versus post-instruction direction.

    ``instruction`` and ``post`` hold activations of the same prompts (``harmful``, ``harmless``,
    ``alarming``) at the two positions. Directions are differences in means over the ``fit_rows`` of
    harmful and harmless (train split); projections are read on the other rows (val) and on every
    alarming prompt, which no direction was fitted on. Relative position 0 is the harmless mean, 1 the
    harmful mean. Two AUCs per direction: held-out harmful versus harmless ("does it read harmfulness?"),
    and, among the alarming controls, refused versus complied (``alarming_refused``, from the refusal
    score the refusal stage saved: "does it read the decision to refuse?"). ``clusters`` (of the harmful
    and the harmless rows) make the cosine's interval resample whole clusters.
    """
    out: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    rng_seed = settings.seed
    for name, acts in (("instruction", instruction), ("post_instruction", post)):
        fit_h = acts["harmful"][torch.from_numpy(fit_rows["harmful"])].double()
        fit_b = acts["harmless"][torch.from_numpy(fit_rows["harmless"])].double()
        direction = fit_h.mean(0) - fit_b.mean(0)
        tensors[name] = direction
        held = {
            label: np.setdiff1d(np.arange(len(acts[label])), fit_rows.get(label, np.array([], dtype=int)))
            for label in ("harmful", "harmless", "alarming")
        }
        for label in ("harmful", "harmless"):
            if len(held[label]) == 0:  # fitted on every prompt (see harmfulness_fit_rows): project in-sample
                held[label] = fit_rows[label]
        projections = {
            label: projection_summary(
                acts[label][torch.from_numpy(held[label])],
                direction,
                n_bootstrap=settings.n_bootstrap,
                seed=rng_seed,
            )
            for label in ("harmful", "harmless", "alarming")
        }
        values = {label: projections[label]["values"] for label in projections}
        out[name] = {
            "harmful_vs_harmless_auc": auc_with_ci(
                values["harmful"], values["harmless"], n_bootstrap=settings.n_bootstrap, seed=rng_seed
            ),
            "alarming_refused_vs_complied_auc": auc_with_ci(
                values["alarming"][alarming_refused],
                values["alarming"][~alarming_refused],
                n_bootstrap=settings.n_bootstrap,
                seed=rng_seed,
            ),
            "norm": float(direction.norm()),
            "projection": {
                k: {kk: vv for kk, vv in v.items() if kk != "values"} for k, v in projections.items()
            },
            "alarming_relative_position": relative_position(
                projections["alarming"]["values"],
                projections["harmless"]["values"],
                projections["harmful"]["values"],
                n_bootstrap=settings.n_bootstrap,
                seed=rng_seed,
            ),
        }
        out[name]["_values"] = projections
    # Paired bootstrap (same prompts at both positions) of the cosine and of the difference in where the
    # alarming prompts sit on the two directions.
    # With clusters, whole clusters (framings) are drawn within the harmful and within the harmless fit rows.
    rng = np.random.default_rng(settings.seed)
    cosines, differences = [], []
    rows_h, rows_b = fit_rows["harmful"], fit_rows["harmless"]
    units = (
        None if clusters is None else [*(clusters[0][i] for i in rows_h), *(clusters[1][i] for i in rows_b)]
    )
    strata = [0] * len(rows_h) + [1] * len(rows_b)
    fit_rows_all = np.concatenate([rows_h, rows_b])
    for rows in stratified_cluster_resamples(
        strata, units, n_resamples=settings.n_bootstrap, seed=settings.seed
    ):
        rh, rb = fit_rows_all[rows[rows < len(rows_h)]], fit_rows_all[rows[rows >= len(rows_h)]]
        dirs = [
            acts["harmful"][torch.from_numpy(rh)].double().mean(0)
            - acts["harmless"][torch.from_numpy(rb)].double().mean(0)
            for acts in (instruction, post)
        ]
        cosines.append(float(torch.nn.functional.cosine_similarity(dirs[0], dirs[1], dim=0)))
        positions = []
        for name in ("instruction", "post_instruction"):
            values = out[name]["_values"]
            if min(len(values[k]["values"]) for k in values) == 0:  # no alarming controls in this prompt set
                positions.append(np.nan)
                continue
            draw = {
                k: values[k]["values"][rng.integers(0, len(values[k]["values"]), len(values[k]["values"]))]
                for k in values
            }
            span = draw["harmful"].mean() - draw["harmless"].mean()
            positions.append(
                (draw["alarming"].mean() - draw["harmless"].mean()) / span if abs(span) > 1e-12 else np.nan
            )
        differences.append(positions[0] - positions[1])
    for name in ("instruction", "post_instruction"):
        del out[name]["_values"]
    cosine = float(
        torch.nn.functional.cosine_similarity(tensors["instruction"], tensors["post_instruction"], dim=0)
    )
    # A cosine of two noisy directions is biased towards 0 and each resample biases it again: the
    # bias-corrected estimate and its basic interval (a percentile interval can miss the estimate).
    out["cosine"] = basic_bootstrap(cosine, cosines, bounds=(-1.0, 1.0))
    out["cosine"]["interval_unit"] = (
        "prompt" if clusters is None else "cluster (organism framing or source set)"
    )
    diff = np.array(differences)
    diff = diff[np.isfinite(diff)]
    out["alarming_position_difference"] = {
        "value": out["instruction"]["alarming_relative_position"]["value"]
        - out["post_instruction"]["alarming_relative_position"]["value"],
        "ci95": list(percentile_ci(diff)),
        "meaning": "relative position on the instruction-token direction minus on the post-instruction one",
    }
    return out, tensors


def harmfulness_by_layer(
    instruction: dict[str, Float[Tensor, "_ layer d_model"]],
    post: dict[str, Float[Tensor, "_ layer d_model"]],
    fit_rows: dict[str, np.ndarray],
    alarming_refused: np.ndarray,
    settings: DimensionalitySettings,
    clusters: tuple[Sequence[str], Sequence[str]] | None = None,
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
