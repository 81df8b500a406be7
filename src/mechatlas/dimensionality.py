"""File-level stages of issue 4: how many dimensions refusal occupies, per layer and per harm domain.

The stage reuses the refusal-direction replication (``mechatlas.refusal_direction``) instead of
recomputing it: it reads the saved post-instruction activations (``data/activations/<model>/``) and the
selected direction (``data/results/refusal_direction/<model>/direction.json``). The only activations it
extracts itself are the ones that stage does not save, at the last *instruction* token (Zhao et al.,
arXiv 2507.11878). Stages, each a Snakemake rule calling one function here:

1. ``instruction_activations``: residual stream at the last token of the user's text, every layer,
   for the prompts the refusal stage saved (same rows, same order).
2. ``geometry``: the activation-only analyses (``mechatlas.geometry``): spectral and INLP dimensionality
   per layer (and position) with bootstrap CIs; per-domain directions, their cosines, principal angles,
   leave-one-domain-out directions and per-domain dimensionality; the harmfulness (instruction token)
   versus refusal (post-instruction) directions and where the over-refusal controls project on them.
3. ``causal``: the analyses that need the model (``mechatlas.causal_geometry``): ablating top-k
   subspaces against random ones, the cone check (Wollschläger et al., arXiv 2502.17420), the
   cross-domain transfer matrix, leave-one-domain-out ablation and harmfulness-versus-refusal steering.
4. ``metrics``: the per-layer table, the domain tables and ``metrics.json`` with verdicts derived by
   the rules in ``VERDICT_RULES``; 5. ``figures`` (``mechatlas.dimensionality_figures``).

Which prompts: the harmful class is the train and val harmful prompts the model refuses (the refusal
stage's ``kept`` filter, as in Arditi et al.); the harmless class is the kept harmless prompts *without*
the ``alarming`` domain, which is held out as the over-refusal control (harmless but alarming-looking).
Interventions are measured on test prompts, which no direction was estimated from.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas import geometry
from mechatlas.config import DimensionalityPositions, DimensionalitySettings, Params
from mechatlas.errors import ArtifactError
from mechatlas.io import atomic_path, write_json
from mechatlas.stats import rate

EXPERIMENT = "dimensionality"
ALARMING = "alarming"  # the organism's over-refusal controls (label harmless); see mechatlas.organism.data
INSTRUCTION_FILE = "instruction_token.npy"


def results_dir(model: str) -> Path:
    return Path("data/results") / EXPERIMENT / model


def figures_dir(model: str) -> Path:
    return Path("reports/figures") / EXPERIMENT / model


# --- reading what the refusal-direction stage saved ---------------------------------------------------


@dataclass(frozen=True)
class SavedActivations:
    """The refusal-direction stage's activations: ``(prompt, position, layer, d_model)`` per file."""

    folder: Path
    index: pd.DataFrame  # one row per saved prompt, in a fixed global order (column `global`)
    positions: tuple[int, ...]  # offsets from the end of the prompt, e.g. (-5, ..., -1)
    position_tokens: tuple[str, ...]
    n_layers: int
    d_model: int

    def resid(self, rows: pd.DataFrame, position_index: int) -> Float[Tensor, "n layer d_model"]:
        """Activations of ``rows`` (a slice of ``index``) at one position, all layers, in float32."""
        out = np.empty((len(rows), self.n_layers, self.d_model), dtype=np.float32)
        for (label, split), group in rows.groupby(["label", "split"], sort=False):
            array = np.load(self.folder / f"{label}_{split}.npy", mmap_mode="r")
            where = rows.index.get_indexer(group.index)
            out[where] = array[group["row"].to_numpy(), position_index]
        return torch.from_numpy(out)


def read_saved_activations(act_dir: Path) -> SavedActivations:
    """Open ``data/activations/<model>/`` as written by ``refusal_direction.extract_activations``."""
    meta_path, index_path = act_dir / "meta.json", act_dir / "index.parquet"
    for path in (meta_path, index_path):
        if not path.exists():
            raise ArtifactError(
                f"{path}: missing; run the refusal-direction activations stage first "
                "(`mechatlas refusal activations` or `snakemake data/activations/<model>`)"
            )
    meta = json.loads(meta_path.read_text())
    index = pd.read_parquet(index_path).reset_index(drop=True)
    index["global"] = np.arange(len(index))
    missing = {"id", "label", "split", "domain", "text", "row", "kept"} - set(index.columns)
    if missing:
        raise ArtifactError(
            f"{index_path}: no column(s) {sorted(missing)}; rerun the refusal activations stage"
        )
    return SavedActivations(
        folder=act_dir,
        index=index,
        positions=tuple(meta["positions"]),
        position_tokens=tuple(meta["position_tokens"]),
        n_layers=len(meta["layers"]),
        d_model=int(meta["d_model"]),
    )


def read_selection(refusal_dir: Path) -> dict[str, Any]:
    """The refusal stage's selected (position, layer) and its direction (float64, unnormalised)."""
    from safetensors.torch import load_file

    info_path, tensors_path = refusal_dir / "direction.json", refusal_dir / "direction.safetensors"
    for path in (info_path, tensors_path):
        if not path.exists():
            raise ArtifactError(f"{path}: missing; run `mechatlas refusal select` first")
    info = json.loads(info_path.read_text())
    info["direction"] = load_file(str(tensors_path))["direction"]
    return dict(info)


MIN_PER_CLASS = 8  # fewer prompts than this per class and the kept filter is dropped (see prompt_groups)
MIN_PER_DOMAIN = 4  # a harm domain needs this many prompts for its own direction and dimensionality


@dataclass(frozen=True)
class PromptGroups:
    """Which saved rows play which part (see the module docstring)."""

    harmful: pd.DataFrame
    harmless: pd.DataFrame
    alarming: pd.DataFrame
    kept_filter: dict[str, bool]  # per class: was the refusal stage's `kept` filter applied?

    @property
    def domains(self) -> list[str]:
        return sorted(self.harmful["domain"].unique())


def prompt_groups(index: pd.DataFrame, splits: Sequence[str] = ("train", "val")) -> PromptGroups:
    """Kept harmful prompts, kept harmless prompts without the alarming controls, and the controls.

    A class with fewer than ``MIN_PER_CLASS`` kept prompts (a model that barely refuses) falls back to
    all its prompts, as the refusal stage's means do; ``kept_filter`` records which.
    """
    rows = index[index["split"].isin(splits)]
    groups: dict[str, pd.DataFrame] = {}
    kept_filter: dict[str, bool] = {}
    for label in ("harmful", "harmless"):
        group = rows[(rows["label"] == label) & (rows["domain"] != ALARMING)]
        kept = group[group["kept"]]
        kept_filter[label] = len(kept) >= MIN_PER_CLASS
        groups[label] = kept if kept_filter[label] else group
        if len(groups[label]) < 4:
            raise ArtifactError(
                f"only {len(groups[label])} {label} prompts were saved by the refusal stage; the dimensionality "
                "estimators need at least 4 per class (raise refusal_direction.n_train or use a bigger prompt set)"
            )
    return PromptGroups(groups["harmful"], groups["harmless"], rows[rows["domain"] == ALARMING], kept_filter)


# --- stage 1: activations at the last instruction token -------------------------------------------------


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Let torch use ``threads`` CPU threads inside the block (``None``: leave torch's choice alone)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def instruction_activations(
    params: Params, name: str, act_dir: Path, out_path: Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Residual stream entering every block at the last token of the user's text, for the saved prompts.

    That token sits just before the post-instruction tokens, at offset ``-(P + 1)`` from the end of a
    left-padded prompt with ``P`` post-instruction tokens. Rows follow ``index.parquet``.
    """
    from numpy.lib.format import open_memmap

    from mechatlas.activations import iter_activations, post_instruction_tokens
    from mechatlas.refusal_direction import load, model_spec

    saved = read_saved_activations(act_dir)
    model = load(params, model_spec(params, name))
    post = post_instruction_tokens(model.tokenizer)
    offset = -(len(post.token_ids) + 1)
    texts = saved.index["text"].tolist()
    with torch_threads(threads), atomic_path(out_path, ".npy") as tmp:
        array = open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(len(texts), model.n_layers, model.d_model)
        )
        for batch in iter_activations(
            model, texts, positions=[offset], batch_size=params.run.batch_size, with_logits=False
        ):
            array[batch.start : batch.start + len(batch.resid)] = batch.resid[:, 0].numpy()
        array.flush()
        del array
    info = {"offset": offset, "n": len(texts), "layers": model.n_layers, "rows": "index.parquet order"}
    write_json(out_path.with_suffix(".json"), info)
    return info


def read_instruction_activations(path: Path, rows: pd.DataFrame) -> Float[Tensor, "n layer d_model"]:
    if not path.exists():
        raise ArtifactError(f"{path}: missing; run `mechatlas dimensionality instruction-activations` first")
    array = np.load(path, mmap_mode="r")
    return torch.from_numpy(np.ascontiguousarray(array[rows["global"].to_numpy()]))


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
) -> tuple[list[dict[str, Any]], dict[int, geometry.Dimensionality]]:
    """Spectral and INLP estimates at every layer; rows for the table, and the spectral fits by layer."""
    rows: list[dict[str, Any]] = []
    spectral: dict[int, geometry.Dimensionality] = {}
    for layer in range(harmful.shape[1]):
        h, b = harmful[:, layer], harmless[:, layer]
        if _degenerate(torch.cat([h, b])):
            for estimator in ("spectral", "probe"):
                rows.append(
                    {"layer": layer, "estimator": estimator, "degenerate": True, "k": 0, "ci95": [0, 0]}
                )
            continue
        methods: tuple[geometry.Method, ...] = ("spectral", "probe")
        for estimator in methods:
            result = geometry.subspace_dimensionality(
                h, b, method=estimator, seed=settings.seed, **_estimator_kwargs(settings)
            )
            rows.append({"layer": layer, "estimator": estimator, "degenerate": False, **result.summary()})
            if isinstance(result.fit, geometry.ProbeFit):
                rows[-1]["directions"] = result.fit.directions  # kept for the causal stage, dropped from JSON
            else:
                spectral[layer] = result
    return rows, spectral


def _split_half_cosine(x: Tensor, harmless_mean: Tensor, n_splits: int, seed: int) -> float:
    """Mean cosine between difference-in-means directions from two random halves of ``x`` (noise ceiling)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_splits):
        order = torch.from_numpy(rng.permutation(len(x)))
        a, b = order[: len(x) // 2], order[len(x) // 2 :]
        da, db = x[a].double().mean(0) - harmless_mean, x[b].double().mean(0) - harmless_mean
        values.append(float(torch.nn.functional.cosine_similarity(da, db, dim=0)))
    return float(np.mean(values))


def domain_geometry(
    harmful: Float[Tensor, "n_harmful d_model"],
    domains: Sequence[str],
    harmless: Float[Tensor, "n_harmless d_model"],
    settings: DimensionalitySettings,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Per-domain directions at one layer: cosines, principal angles, noise ceilings, LODO, dimensionality.

    Only domains with at least ``MIN_PER_DOMAIN`` prompts take part; with fewer than two such domains
    there is nothing to compare and the summary says so.
    """
    counts = pd.Series(list(domains)).value_counts()
    names = sorted(d for d, n in counts.items() if n >= MIN_PER_DOMAIN)
    if len(names) < 2:
        return {"too_few_domains": True, "domains": names, "n_harmful": counts.to_dict()}, {}
    keep = np.isin(np.asarray(domains), names)
    harmful = harmful[torch.from_numpy(keep)]
    domains = [d for d, k in zip(domains, keep, strict=True) if k]
    harmless_mean = harmless.double().mean(dim=0)
    labels = np.asarray(domains)
    directions = geometry.domain_directions(harmful, domains, harmless_mean)
    lodo = geometry.leave_one_out_directions(harmful, domains, harmless_mean)
    pooled = harmful.double().mean(dim=0) - harmless_mean
    stacked = torch.stack([directions[d] for d in names])
    cosine = geometry.cosine_matrix(stacked)
    off_diagonal = cosine[~np.eye(len(names), dtype=bool)]

    rng = np.random.default_rng(settings.seed)
    by_domain = {d: np.flatnonzero(labels == d) for d in names}
    boot = []
    for _ in range(settings.n_bootstrap):
        resampled = []
        for d in names:
            rows = torch.from_numpy(rng.choice(by_domain[d], len(by_domain[d])))
            resampled.append(harmful[rows].double().mean(0) - harmless_mean)
        c = geometry.cosine_matrix(torch.stack(resampled))
        boot.append(c[~np.eye(len(names), dtype=bool)].mean())
    split_half = {
        d: _split_half_cosine(harmful[torch.from_numpy(by_domain[d])], harmless_mean, 8, settings.seed)
        for d in names
    }

    subspaces, per_domain = {}, {}
    for d in names:
        rows = torch.from_numpy(by_domain[d])
        result = geometry.subspace_dimensionality(
            harmful[rows], harmless, method="spectral", seed=settings.seed, **_spectral_only(settings)
        )
        per_domain[d] = result.summary()
        rank = max(1, min(settings.domain_subspace_rank, result.fit.patterns.shape[0]))  # type: ignore[union-attr]
        subspaces[d] = result.fit.patterns[:rank]  # type: ignore[union-attr]
    overlap = np.array(
        [[geometry.subspace_overlap(subspaces[a], subspaces[b]) for b in names] for a in names]
    )
    first_angle = np.array(
        [
            [float(np.degrees(geometry.principal_angles(subspaces[a], subspaces[b])[0])) for b in names]
            for a in names
        ]
    )
    summary = {
        "domains": names,
        "n_harmful": {d: len(by_domain[d]) for d in names},
        "n_harmless": len(harmless),
        "cosine": cosine.tolist(),
        "mean_off_diagonal_cosine": {
            "value": float(off_diagonal.mean()),
            "ci95": list(geometry._percentile_ci(np.array(boot))),
            "n_bootstrap": settings.n_bootstrap,
        },
        "split_half_cosine": split_half,
        "mean_split_half_cosine": float(np.mean(list(split_half.values()))),
        "cosine_with_pooled": {
            d: float(torch.nn.functional.cosine_similarity(directions[d], pooled, dim=0)) for d in names
        },
        "lodo_cosine_with_own": {
            d: float(torch.nn.functional.cosine_similarity(lodo[d], directions[d], dim=0)) for d in names
        },
        "subspace_rank": settings.domain_subspace_rank,
        "subspace_overlap": overlap.tolist(),
        "random_subspace_overlap": settings.domain_subspace_rank / harmful.shape[1],
        "first_principal_angle_deg": first_angle.tolist(),
        "dimensionality": per_domain,
    }
    tensors = {"domain": stacked, "lodo": torch.stack([lodo[d] for d in names])}
    return summary, tensors


def harmfulness_versus_refusal(
    instruction: dict[str, Float[Tensor, "n d_model"]],
    post: dict[str, Float[Tensor, "n d_model"]],
    fit_rows: dict[str, np.ndarray],
    alarming_refused: np.ndarray,
    settings: DimensionalitySettings,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Zhao et al. (arXiv 2507.11878) at one layer: the instruction-token versus post-instruction direction.

    ``instruction`` and ``post`` hold activations of the same prompts (``harmful``, ``harmless``,
    ``alarming``) at the two positions. Directions are differences in means over the ``fit_rows`` of
    harmful and harmless (train split); projections are read on the other rows (val) and on every
    alarming prompt, which no direction was fitted on. Relative position 0 is the harmless mean, 1 the
    harmful mean. Two AUCs per direction: held-out harmful versus harmless ("does it read harmfulness?"),
    and, among the alarming controls, refused versus complied (``alarming_refused``, from the refusal
    score the refusal stage saved: "does it read the decision to refuse?").
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
            if len(held[label]) == 0:  # fitted on every prompt (see geometry_stage): project in-sample
                held[label] = fit_rows[label]
        projections = {
            label: geometry.projection_summary(
                acts[label][torch.from_numpy(held[label])],
                direction,
                n_bootstrap=settings.n_bootstrap,
                seed=rng_seed,
            )
            for label in ("harmful", "harmless", "alarming")
        }
        values = {label: projections[label]["values"] for label in projections}
        out[name] = {
            "harmful_vs_harmless_auc": geometry.auc_with_ci(
                values["harmful"], values["harmless"], n_bootstrap=settings.n_bootstrap, seed=rng_seed
            ),
            "alarming_refused_vs_complied_auc": geometry.auc_with_ci(
                values["alarming"][alarming_refused],
                values["alarming"][~alarming_refused],
                n_bootstrap=settings.n_bootstrap,
                seed=rng_seed,
            ),
            "norm": float(direction.norm()),
            "projection": {
                k: {kk: vv for kk, vv in v.items() if kk != "values"} for k, v in projections.items()
            },
            "alarming_relative_position": geometry.relative_position(
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
    rng = np.random.default_rng(settings.seed)
    cosines, differences = [], []
    rows_h, rows_b = fit_rows["harmful"], fit_rows["harmless"]
    for _ in range(settings.n_bootstrap):
        rh, rb = rng.choice(rows_h, len(rows_h)), rng.choice(rows_b, len(rows_b))
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
    out["cosine"] = {
        "value": cosine,
        "ci95": list(geometry._percentile_ci(np.array(cosines))),
        "n_bootstrap": settings.n_bootstrap,
    }
    diff = np.array(differences)
    diff = diff[np.isfinite(diff)]
    out["alarming_position_difference"] = {
        "value": out["instruction"]["alarming_relative_position"]["value"]
        - out["post_instruction"]["alarming_relative_position"]["value"],
        "ci95": list(geometry._percentile_ci(diff)),
        "meaning": "relative position on the instruction-token direction minus on the post-instruction one",
    }
    return out, tensors


def geometry_stage(
    params: Params, name: str, act_dir: Path, refusal_dir: Path, instruction_path: Path, out_dir: Path
) -> dict[str, Any]:
    """Every activation-only analysis; writes ``geometry.json`` and ``subspaces.safetensors``."""
    from safetensors.torch import save_file

    settings = params.dimensionality
    saved = read_saved_activations(act_dir)
    selection = read_selection(refusal_dir)
    groups = prompt_groups(saved.index)
    selected = int(selection["position_index"])
    position_indices = (
        list(range(len(saved.positions))) if settings.positions is DimensionalityPositions.all else [selected]
    )
    table: list[dict[str, Any]] = []
    tensors: dict[str, Tensor] = {}
    spectral_at_selected: dict[int, geometry.Dimensionality] = {}
    with geometry.one_thread():
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

        harmful_sel = saved.resid(groups.harmful, selected)
        harmless_sel = saved.resid(groups.harmless, selected)
        domains: dict[str, Any] = {}
        for layer in range(saved.n_layers):
            if _degenerate(torch.cat([harmful_sel[:, layer], harmless_sel[:, layer]])):
                domains[str(layer)] = {"degenerate": True}
                continue
            summary, domain_tensors = domain_geometry(
                harmful_sel[:, layer], groups.harmful["domain"].tolist(), harmless_sel[:, layer], settings
            )
            domains[str(layer)] = summary
            tensors[f"pooled.layer{layer}"] = harmful_sel[:, layer].double().mean(0) - harmless_sel[
                :, layer
            ].double().mean(0)
            tensors |= {f"{key}.layer{layer}": value.contiguous() for key, value in domain_tensors.items()}

        instruction_acts = {
            label: read_instruction_activations(instruction_path, getattr(groups, label))
            for label in ("harmful", "harmless", "alarming")
        }
        post_acts = {
            "harmful": harmful_sel,
            "harmless": harmless_sel,
            "alarming": saved.resid(groups.alarming, selected),
        }
        fit_rows = {
            label: np.flatnonzero(getattr(groups, label)["split"].to_numpy() == "train")
            for label in ("harmful", "harmless")
        }
        held_out = all(
            2 <= len(fit_rows[label]) <= len(getattr(groups, label)) - 2 for label in ("harmful", "harmless")
        )
        if not held_out:  # too few train or val prompts to keep them apart: fit and project on all of them
            fit_rows = {label: np.arange(len(getattr(groups, label))) for label in ("harmful", "harmless")}
        alarming_refused = groups.alarming["refusal_score"].to_numpy() > 0
        harmfulness: dict[str, Any] = {}
        for layer in range(saved.n_layers):
            at_layer = ({k: v[:, layer] for k, v in acts.items()} for acts in (instruction_acts, post_acts))
            inst, post = at_layer
            if _degenerate(inst["harmful"]) or _degenerate(post["harmful"]):
                harmfulness[str(layer)] = {"degenerate": True}
                continue
            summary, zhao_tensors = harmfulness_versus_refusal(
                inst, post, fit_rows, alarming_refused, settings
            )
            harmfulness[str(layer)] = summary
            tensors |= {f"{key}.layer{layer}": value.contiguous() for key, value in zhao_tensors.items()}

    record = {
        "experiment": EXPERIMENT,
        "model": name,
        "selected": {
            "position": int(selection["position"]),
            "position_index": selected,
            "token": saved.position_tokens[selected],
            "layer": int(selection["layer"]),
            "hook": f"blocks.{int(selection['layer'])}.hook_resid_pre",
        },
        "layers": list(range(saved.n_layers)),
        "positions_analysed": [saved.positions[p] for p in position_indices],
        "n": {
            "harmful": len(groups.harmful),
            "harmless": len(groups.harmless),
            "alarming": len(groups.alarming),
            "splits": ["train", "val"],
        },
        "dimensionality": table,
        "domains": domains,
        "harmfulness_vs_refusal": harmfulness,
        "harmfulness_fit": "directions from train prompts; projections on val prompts and every alarming prompt"
        if held_out
        else "too few prompts to hold any out: directions and projections on all train and val prompts",
        "kept_filter": groups.kept_filter,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "subspaces.safetensors", ".safetensors") as tmp:
        save_file({k: v.to(torch.float64).contiguous() for k, v in tensors.items()}, str(tmp))
    write_json(out_dir / "geometry.json", _json_safe(record))
    return record


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become null, numpy scalars and arrays become Python values."""
    import math

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- stage 3: interventions -------------------------------------------------------------------------------


def _test_prompts(params: Params, name: str) -> dict[str, Any]:
    """Capped test prompts per group (harmful, harmless without the controls, alarming controls)."""
    from mechatlas.causal_geometry import HeldOutPrompts
    from mechatlas.refusal_direction import cap_per_domain, load_prompts, model_spec

    settings = params.dimensionality
    records = [r for r in load_prompts(params, model_spec(params, name)) if r.split == "test"]
    chosen = {
        "harmful": [r for r in records if r.label == "harmful"],
        "harmless": [r for r in records if r.label == "harmless" and r.domain != ALARMING],
        "alarming": [r for r in records if r.domain == ALARMING],
    }
    out = {}
    for group, members in chosen.items():
        if group != "alarming" and not members:
            raise ArtifactError(
                f"the prompt set of `{name}` has no {group} test prompts; the interventions need them"
            )
        capped = cap_per_domain(members, settings.n_causal_prompts, settings.seed)
        out[group] = HeldOutPrompts(
            tuple(r.id for r in capped), tuple(r.text for r in capped), tuple(r.domain for r in capped)
        )
    return out


def causal_stage(
    params: Params, name: str, geometry_dir: Path, out_dir: Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Every intervention analysis; writes ``causal.parquet`` (one row per prompt and condition) and
    ``causal.json`` (rates with Wilson CIs, causal dimensions with bootstrap CIs)."""
    from safetensors.torch import load_file

    from mechatlas import causal_geometry as cg
    from mechatlas.evaluation import last_logits, refusal_token_ids
    from mechatlas.interventions import ablation_hooks
    from mechatlas.refusal_direction import load, model_spec

    settings, refusal = params.dimensionality, params.refusal_direction
    geo_path = geometry_dir / "geometry.json"
    if not geo_path.exists():
        raise ArtifactError(f"{geo_path}: missing; run `mechatlas dimensionality geometry` first")
    geo = json.loads(geo_path.read_text())
    tensors = load_file(str(geometry_dir / "subspaces.safetensors"))
    layer = int(geo["selected"]["layer"])
    with torch_threads(threads):
        model = load(params, model_spec(params, name))
        prompts = _test_prompts(params, name)
        batch_size = max(params.run.batch_size, refusal.scoring_batch_size)  # forward passes only
        meter = cg.RefusalMeter(
            model=model,
            refusal_ids=tuple(refusal_token_ids(model.tokenizer, refusal.refusal_tokens)),
            judge=settings.judge,
            substrings=tuple(refusal.refusal_substrings),
            max_new_tokens=settings.max_new_tokens,
            batch_size=batch_size,
        )
        harmful, harmless = prompts["harmful"], prompts["harmless"]
        base_harmless = last_logits(model, list(harmless.texts), batch_size=batch_size)
        baseline = {group: rate(meter(p.texts).tolist()) for group, p in prompts.items() if p.ids}

        def side_effect(directions: Tensor) -> float:
            hooks = ablation_hooks(model.n_layers, directions)
            return cg.first_token_kl(model, harmless.texts, hooks, base_harmless, batch_size=batch_size)

        frames: list[pd.DataFrame] = []
        summary: dict[str, Any] = {
            "selected_layer": layer,
            "judge": settings.judge.value,
            "baseline": baseline,
            "sweeps": {},
        }
        sweep_kwargs: dict[str, Any] = {"max_k": settings.max_k, "threshold": settings.refusal_threshold}
        k_kwargs: dict[str, Any] = {
            "threshold": settings.refusal_threshold,
            "n_bootstrap": settings.n_bootstrap,
            "seed": settings.seed,
        }

        # 1. The causal dimension per layer: top-k spectral subspace against k random directions, and the
        #    side effect (first-token KL on harmless prompts) of ablating each at the k found.
        for source_layer in geo["layers"]:
            key = f"spectral.layer{source_layer}"
            if key not in tensors or tensors[key].shape[0] == 0:
                summary["sweeps"][str(source_layer)] = {"degenerate": True}
                continue
            sweep = cg.ablation_sweep(
                meter, harmful, tensors[key], seed=settings.seed + source_layer, **sweep_kwargs
            )
            frames.append(
                sweep.assign(analysis="sweep", estimator="spectral", layer=source_layer, label="harmful")
            )
            found = cg.smallest_k(sweep, "subspace", **k_kwargs)
            k_side = found["k"] or found["max_k_evaluated"]
            control_k = int(sweep.loc[sweep["condition"] == "random", "k"].max())
            summary["sweeps"][str(source_layer)] = {
                "spectral": found,
                "random": cg.smallest_k(sweep, "random", **k_kwargs),
                "harmless_kl": {
                    "k": k_side,
                    "spectral": side_effect(tensors[key][:k_side]),
                    "random": side_effect(
                        geometry.random_subspace(control_k, model.d_model, settings.seed + source_layer)[
                            :k_side
                        ]
                    ),
                },
            }
        # The INLP directions and the difference in means, ablated at the selected layer, for comparison.
        inlp = tensors.get(f"inlp.layer{layer}")
        if inlp is not None and inlp.shape[0] > 0 and "spectral" in summary["sweeps"].get(str(layer), {}):
            sweep = cg.ablation_sweep(meter, harmful, inlp, seed=settings.seed, control=False, **sweep_kwargs)
            sweep = sweep[sweep["condition"] != "baseline"]
            frames.append(sweep.assign(analysis="sweep", estimator="probe", layer=layer, label="harmful"))
            summary["sweeps"][str(layer)]["probe"] = cg.smallest_k(sweep, "subspace", **k_kwargs)
        pooled_rows = pd.DataFrame(columns=["id", "domain", "refused", "direction"])
        if f"pooled.layer{layer}" in tensors:  # absent when the selected layer is degenerate
            pooled = tensors[f"pooled.layer{layer}"]
            pooled_rows = cg.ablation_by_direction(meter, harmful, pooled[None], ["pooled"])
            pooled_rows = pooled_rows[pooled_rows["direction"] != "none"]
            frames.append(pooled_rows.assign(analysis="pooled", layer=layer, label="harmful"))
            summary["difference_in_means_ablation"] = cg.rates_by(pooled_rows)

        # 2-3. Need per-domain directions (at least two domains with enough prompts).
        if f"domain.layer{layer}" in tensors:
            # 2. The cone check, with the per-domain directions as generators. Its single-direction ablations
            #    are also the rows of the transfer matrix (domain A's direction ablated, refusal on domain B).
            domain_names = geo["domains"][str(layer)]["domains"]
            generators = tensors[f"domain.layer{layer}"]
            cone = cg.cone_check(
                meter,
                harmful,
                harmless,
                generators,
                domain_names,
                layer=layer,
                coefficient=refusal.addition_coefficient,
                n_samples=settings.cone_samples,
                seed=settings.seed,
            )
            frames.append(cone.assign(analysis="cone", layer=layer))
            summary["cone"] = {
                "generators": domain_names,
                "effective_rank": cg.effective_rank(generators),
                "rates": cg.rates_by(cone, "label", "condition", "generator"),
                "coefficient": refusal.addition_coefficient,
            }

            # 3. Transfer between domains and leave-one-domain-out.
            own = cone[(cone["label"] == "harmful") & cone["condition"].isin(["baseline", "ablate"])]
            own = own.assign(direction=own["generator"])
            lodo = cg.ablation_by_direction(meter, harmful, tensors[f"lodo.layer{layer}"], domain_names)
            lodo = lodo[lodo["direction"] != "none"]
            frames.append(lodo.assign(analysis="lodo", layer=layer, label="harmful"))
            targets = sorted(set(harmful.domains))

            def rate_of(rows: pd.DataFrame, direction: str, domain: str) -> dict[str, Any]:
                return rate(
                    rows[(rows["direction"] == direction) & (rows["domain"] == domain)]["refused"].tolist()
                )

            summary["transfer"] = cg.transfer_matrix(own, domain_names, targets)
            summary["transfer"]["baseline"] = [rate_of(own, "none", t) for t in targets]
            summary["transfer"]["pooled"] = [rate_of(pooled_rows, "pooled", t) for t in targets]
            summary["lodo"] = {
                d: {
                    "own_direction": rate_of(own, d, d),
                    "leave_one_out_direction": rate_of(lodo, d, d),
                    "pooled_direction": rate_of(pooled_rows, "pooled", d),
                    "baseline": rate_of(own, "none", d),
                }
                for d in domain_names
                if d in targets
            }

        # 4. Harmfulness (last instruction token) versus refusal (post-instruction) directions.
        directions = {
            key: tensors[f"{key}.layer{layer}"]
            for key in ("instruction", "post_instruction")
            if f"{key}.layer{layer}" in tensors
        }
        groups = {g: prompts[g] for g in ("harmful", "harmless", "alarming") if prompts[g].ids}
        if len(directions) == 2:  # absent when the selected layer is degenerate
            # Both are added at the refusal direction's norm, so they differ only in where they point.
            added_norm = float(directions["post_instruction"].norm())
            steer = cg.steering(
                meter,
                groups,
                directions,
                layer=layer,
                coefficient=refusal.addition_coefficient,
                norm=added_norm,
            )
            frames.append(steer.assign(analysis="harmfulness", layer=layer))
            summary["harmfulness"] = {
                "rates": cg.rates_by(steer, "condition", "direction", "label"),
                "raw_norms": {k: float(v.norm()) for k, v in directions.items()},
                "added_norm": added_norm,
            }

        # 5. How well the one-pass judge agrees with generated replies (only when it is the judge).
        if settings.judge.value == "first_token" and "spectral" in summary["sweeps"].get(str(layer), {}):
            k_hat = summary["sweeps"][str(layer)]["spectral"]["k"] or 1
            checks = {
                "baseline harmful": (harmful.texts, []),
                "baseline harmless": (harmless.texts, []),
                f"spectral top-{k_hat} ablation, harmful": (
                    harmful.texts,
                    ablation_hooks(model.n_layers, tensors[f"spectral.layer{layer}"][:k_hat]),
                ),
            }
            summary["judge_agreement"] = {
                check: _agreement(meter, texts, hooks) for check, (texts, hooks) in checks.items()
            }

    rows = pd.concat(frames, ignore_index=True)
    rows.insert(0, "model", name)
    summary["n"] = {g: len(p.ids) for g, p in prompts.items()}
    summary["test_prompts"] = "test split, at most n_causal_prompts per group, spread over domains"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "causal.parquet", ".parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    write_json(out_dir / "causal.json", _json_safe(summary))
    return summary


def _agreement(meter: Any, texts: Sequence[str], hooks: Sequence[Any]) -> dict[str, Any]:
    one_pass = meter(texts, hooks)
    generated = meter.by_substring(texts, hooks)
    return {
        "n": len(texts),
        "agreement": float((one_pass == generated).mean()) if len(texts) else None,
        "first_token_rate": float(one_pass.mean()) if len(texts) else None,
        "substring_rate": float(generated.mean()) if len(texts) else None,
    }


# --- stage 4: the result record --------------------------------------------------------------------------

METHODS = [
    "spectral-dimensionality",
    "inlp",
    "linear-probing",
    "difference-in-means",
    "directional-ablation",
    "activation-addition",
    "concept-cones",
    "causal-ablation",
]
OWN_PAPER = "mechatlas2026refusalgeometry"
CONES_PAPER = "wollschlager2025geometry"
HARMFULNESS_PAPER = "zhao2025harmfulness"
MIN_BASELINE_REFUSAL = 0.5  # below this there is too little refusal on harmful prompts to take apart

VERDICT_RULES: dict[str, str] = {
    f"{OWN_PAPER}/refusal-multidimensional": (
        "At the selected layer, on harmful test prompts (Wilson 95% CIs). pending if the baseline refuses fewer "
        f"than {MIN_BASELINE_REFUSAL:.0%}. 'one direction is not enough' if ablating the difference-in-means "
        "direction and ablating the top spectral direction each leave refusal with CI low above "
        "refusal_threshold. replicated if one direction is not enough AND ablating the top-k spectral "
        "subspace brings refusal below refusal_threshold at some k >= 2 AND k random directions do not (their "
        "CI low stays above it); partially if one direction is not enough but no subspace up to max_k removes "
        "refusal, or the random control removes it too; not replicated if a single direction removes refusal."
    ),
    f"{OWN_PAPER}/dimensionality-varies-with-depth": (
        "Over the layers where activations vary (layer 0 can hold one identical template embedding). "
        "replicated if two layers have disjoint spectral-count CIs, or differing spectral counts and disjoint "
        "causal-dimension CIs; partially if either estimator's point estimates differ across layers but no CIs "
        "are disjoint; not replicated if both are constant; pending with fewer than two such layers."
    ),
    f"{OWN_PAPER}/domain-dependent-directions": (
        "At the selected position and layer. (a) measurable: the mean cosine between different domains' "
        "difference-in-means directions (bootstrap CI high) is below the mean split-half cosine of a domain's "
        "direction with itself (the noise ceiling). (b) causal: ablating domain A's direction cuts refusal on A "
        "more than on the other domains, by at least transfer_gap on average over A (transfer matrix). "
        "replicated if (a) and (b); partially if one; not replicated if neither; pending with fewer than two "
        "domains or too little baseline refusal."
    ),
    f"{OWN_PAPER}/harmfulness-refusal-loosely-linked": (
        "At the selected layer, directions = difference in means at the last instruction token (harmfulness) "
        "and at the selected post-instruction position (refusal). (a) linked: on held-out prompts the "
        "harmfulness direction separates harmful from harmless (AUC CI low > 0.5). (b) not tight: their cosine "
        "CI high is below distinct_cosine. (c) interventions differ: ablating the harmfulness direction leaves "
        "more harmful refusal than ablating the refusal direction, or adding it (at the same norm) induces less "
        "harmless refusal, with disjoint Wilson CIs. replicated if (a), (b) and (c); partially if (a) and one of "
        "(b), (c); not replicated otherwise."
    ),
    f"{CONES_PAPER}/refusal-concept-cones": (
        "At the selected layer, with the per-domain difference-in-means directions as generators. (a) at least "
        "two generators each induce refusal when added to harmless prompts (rate >= induce_threshold and CI low "
        "above the random-direction addition's CI high). (b) at least 90% of sampled positive combinations "
        "induce refusal (rate >= induce_threshold). (c) the cone is multi-dimensional and redundant: the "
        "generators' effective rank is >= 1.5, ablating their span brings harmful refusal below "
        "refusal_threshold, and ablating any single generator does not. replicated if (a), (b) and (c); "
        "partially if (a) and (b) only; not replicated otherwise; pending if the baseline refuses fewer than "
        f"{MIN_BASELINE_REFUSAL:.0%} of harmful prompts."
    ),
    f"{HARMFULNESS_PAPER}/harmfulness-distinct-from-refusal": (
        "At the selected layer. (a) the last-instruction-token and post-instruction directions differ: cosine "
        "CI high below distinct_cosine. (b) they act differently: adding the refusal direction induces harmless "
        "refusal (>= induce_threshold) while adding the harmfulness direction at the same norm does not, with "
        "disjoint Wilson CIs. replicated if (a) and (b); partially if one; not replicated if neither. Where the "
        "alarming-but-harmless controls sit on each direction is reported with the verdict, not used by it."
    ),
}


def _ci_text(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("ci95") is None or None in stat["ci95"]:
        return "[n/a]"
    low, high = stat["ci95"]
    return f"[{low:.2f}, {high:.2f}]"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _usable_layers(geo: dict[str, Any]) -> list[str]:
    return [str(layer) for layer in geo["layers"] if not geo["domains"].get(str(layer), {}).get("degenerate")]


def _spectral_rows(geo: dict[str, Any], position: int | None = None) -> dict[str, dict[str, Any]]:
    position = geo["selected"]["position"] if position is None else position
    return {
        str(r["layer"]): r
        for r in geo["dimensionality"]
        if r["estimator"] == "spectral" and r["position"] == position and not r.get("degenerate")
    }


def _not_testable(geo: dict[str, Any], causal: dict[str, Any], *needs: str) -> str | None:
    """Why a claim cannot be judged here (the reason for ``pending``), or ``None`` when it can."""
    layer = str(geo["selected"]["layer"])
    baseline = causal.get("baseline", {}).get("harmful")
    if baseline is None or baseline["value"] is None or baseline["value"] < MIN_BASELINE_REFUSAL:
        value = _num(baseline["value"] if baseline else None)
        return f"the model refuses {value} of harmful test prompts; below {MIN_BASELINE_REFUSAL} there is too little refusal"
    missing = [key for key in needs if key not in causal]
    if missing or "spectral" not in causal["sweeps"].get(layer, {}):
        return (
            f"layer {layer} (the refusal direction's) has no varying activations or too few prompts per domain "
            f"for {', '.join(missing) or 'the sweep'}"
        )
    return None


def _multidimensional(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    why = _not_testable(geo, causal, "difference_in_means_ablation")
    if why:
        return "pending", why
    layer = str(geo["selected"]["layer"])
    sweep = causal["sweeps"][layer]
    spectral, random = sweep["spectral"], sweep["random"]["curve"]
    top1 = spectral["curve"].get("1")
    dim = causal["difference_in_means_ablation"]
    single_fails = all(stat["ci95"][0] > s.refusal_threshold for stat in (top1, dim) if stat)
    k = spectral["k"]
    kl = sweep.get("harmless_kl", {})
    numbers = (
        f"layer {layer}: baseline {causal['baseline']['harmful']['value']:.2f}; difference-in-means ablated "
        f"{dim['value']:.2f} {_ci_text(dim)}; top spectral direction ablated {_num(top1['value'] if top1 else None)} "
        f"{_ci_text(top1)}; smallest k below {s.refusal_threshold}: "
        f"{k if k else 'none up to ' + str(spectral['max_k_evaluated'])}"
    )
    if k:
        control = random.get(str(k))
        numbers += f" (k random directions: {control['value']:.2f} {_ci_text(control)})" if control else ""
    if kl:
        numbers += (
            f"; side effect, first-token KL on harmless prompts at k = {kl['k']}: {kl['spectral']:.2f} nats "
            f"(random: {kl['random']:.2f})"
        )
    if not single_fails:
        return "not replicated", numbers + "; a single direction already removes refusal"
    control_ok = bool(k) and str(k) in random and random[str(k)]["ci95"][0] > s.refusal_threshold
    if k and k >= 2 and control_ok:
        return "replicated", numbers
    return "partially", numbers


def _varies_with_depth(geo: dict[str, Any], causal: dict[str, Any]) -> tuple[str, str]:
    spectral = _spectral_rows(geo)
    layers = [layer for layer in _usable_layers(geo) if layer in spectral]
    if len(layers) < 2:
        return "pending", "fewer than two layers with varying activations"
    causal_k = {
        layer: causal["sweeps"][layer]["spectral"]
        for layer in layers
        if "spectral" in causal["sweeps"].get(layer, {})
    }

    def disjoint(stats: dict[str, Any]) -> bool:
        items = [s["ci95"] for s in stats.values()]
        return any(a[1] < b[0] or b[1] < a[0] for i, a in enumerate(items) for b in items[i + 1 :])

    def differ(values: list[Any]) -> bool:
        return len(set(values)) > 1

    spectral_k = [spectral[layer]["k"] for layer in layers]
    causal_values = [c["k"] if c["crossed"] else f">{c['max_k_evaluated']}" for c in causal_k.values()]
    numbers = "spectral k by layer " + ", ".join(
        f"{layer}: {spectral[layer]['k']} {_ci_text(spectral[layer])}" for layer in layers
    )
    numbers += "; causal k by layer " + ", ".join(
        f"{layer}: {v} {_ci_text(causal_k[layer])}" for layer, v in zip(causal_k, causal_values, strict=True)
    )
    if disjoint({layer: spectral[layer] for layer in layers}) or (differ(spectral_k) and disjoint(causal_k)):
        return "replicated", numbers
    if differ(spectral_k) or differ(causal_values):
        return "partially", numbers
    return "not replicated", numbers


def _transfer_gap(transfer: dict[str, Any]) -> float:
    sources, targets, rates = transfer["sources"], transfer["targets"], transfer["rates"]
    gaps = []
    for i, source in enumerate(sources):
        if source not in targets:
            continue
        own = rates[i][targets.index(source)]["value"]
        others = [rates[i][j]["value"] for j, t in enumerate(targets) if t != source and rates[i][j]["n"]]
        if own is not None and others:
            gaps.append(float(np.mean(others)) - own)
    return float(np.mean(gaps)) if gaps else float("nan")


def _domain_dependent(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    why = _not_testable(geo, causal, "transfer", "lodo")
    if why:
        return "pending", why
    layer = str(geo["selected"]["layer"])
    domains = geo["domains"][layer]
    between = domains["mean_off_diagonal_cosine"]
    ceiling = domains["mean_split_half_cosine"]
    measurable = between["ci95"][1] < ceiling
    gap = _transfer_gap(causal["transfer"])
    lodo_gaps = [
        v["leave_one_out_direction"]["value"] - v["own_direction"]["value"]
        for v in causal["lodo"].values()
        if v["own_direction"]["n"]
    ]
    causal_ok = gap >= s.transfer_gap
    numbers = (
        f"layer {layer}: between-domain cosine {between['value']:.3f} {_ci_text(between)} vs split-half "
        f"{ceiling:.3f}; transfer gap (other domains minus own, refusal after ablation) {gap:+.2f} "
        f"(rule: >= {s.transfer_gap}); leave-one-out minus own-direction refusal "
        f"{float(np.mean(lodo_gaps)) if lodo_gaps else float('nan'):+.2f}"
    )
    verdict = (
        "replicated"
        if measurable and causal_ok
        else "partially"
        if measurable or causal_ok
        else "not replicated"
    )
    return verdict, numbers


def _disjoint_above(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when rate ``a``'s CI lies entirely above rate ``b``'s."""
    return bool(a and b and a["n"] and b["n"] and a["ci95"][0] > b["ci95"][1])


def _harmfulness_numbers(geo: dict[str, Any], causal: dict[str, Any]) -> dict[str, Any]:
    rates = causal["harmfulness"]["rates"]
    return {
        "layer": str(geo["selected"]["layer"]),
        "geometry": geo["harmfulness_vs_refusal"][str(geo["selected"]["layer"])],
        "ablate_inst": _dig(rates, "ablate", "instruction", "harmful"),
        "ablate_post": _dig(rates, "ablate", "post_instruction", "harmful"),
        "add_inst": _dig(rates, "add", "instruction", "harmless"),
        "add_post": _dig(rates, "add", "post_instruction", "harmless"),
    }


def _dig(tree: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _value(stat: dict[str, Any] | None) -> str:
    return _num(stat["value"] if stat else None)


def _loosely_linked(
    geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings
) -> tuple[str, str]:
    why = _not_testable(geo, causal, "harmfulness")
    if why:
        return "pending", why
    n = _harmfulness_numbers(geo, causal)
    g = n["geometry"]
    auc = g["instruction"]["harmful_vs_harmless_auc"]
    linked = auc["ci95"][0] is not None and auc["ci95"][0] > 0.5
    not_tight = g["cosine"]["ci95"][1] < s.distinct_cosine
    differs = _disjoint_above(n["ablate_inst"], n["ablate_post"]) or _disjoint_above(
        n["add_post"], n["add_inst"]
    )
    numbers = (
        f"layer {n['layer']}: harmfulness direction AUC harmful vs harmless {_num(auc['value'])} {_ci_text(auc)}; "
        f"cosine with the refusal direction {g['cosine']['value']:.2f} {_ci_text(g['cosine'])}; harmful refusal "
        f"with harmfulness / refusal direction ablated {_value(n['ablate_inst'])} / {_value(n['ablate_post'])}; "
        f"harmless refusal with each added {_value(n['add_inst'])} / {_value(n['add_post'])}"
    )
    if linked and not_tight and differs:
        return "replicated", numbers
    if linked and (not_tight or differs):
        return "partially", numbers
    return "not replicated", numbers


def _cones(geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings) -> tuple[str, str]:
    why = _not_testable(geo, causal, "cone")
    if why:
        return "pending", why
    cone = causal["cone"]
    rates = cone["rates"]
    adds, ablates = rates["harmless"]["add"], rates["harmful"]["ablate"]
    random = adds["random"]
    generators = cone["generators"]
    inducing = [
        g for g in generators if adds[g]["value"] >= s.induce_threshold and _disjoint_above(adds[g], random)
    ]
    combos = [v for k, v in adds.items() if k.startswith("combination-")]
    combo_share = float(np.mean([c["value"] >= s.induce_threshold for c in combos])) if combos else 0.0
    span = ablates["span"]
    singles = [ablates[g]["value"] for g in generators]
    multi = (
        cone["effective_rank"] >= 1.5
        and span["value"] < s.refusal_threshold
        and min(singles) >= s.refusal_threshold
    )
    numbers = (
        f"{len(inducing)}/{len(generators)} domain directions induce refusal when added (random: "
        f"{random['value']:.2f}); {combo_share:.0%} of {len(combos)} positive combinations do; effective rank "
        f"{cone['effective_rank']:.2f}; harmful refusal with the span ablated {span['value']:.2f}, with single "
        f"generators {min(singles):.2f}-{max(singles):.2f}"
    )
    a, b = len(inducing) >= 2, combo_share >= 0.9
    return ("replicated" if a and b and multi else "partially" if a and b else "not replicated"), numbers


def _distinct(geo: dict[str, Any], causal: dict[str, Any], s: DimensionalitySettings) -> tuple[str, str]:
    why = _not_testable(geo, causal, "harmfulness")
    if why:
        return "pending", why
    n = _harmfulness_numbers(geo, causal)
    g = n["geometry"]
    different = g["cosine"]["ci95"][1] < s.distinct_cosine
    acts = (
        n["add_post"] is not None
        and n["add_post"]["value"] >= s.induce_threshold
        and _disjoint_above(n["add_post"], n["add_inst"])
    )
    alarming = g["alarming_position_difference"]
    numbers = (
        f"layer {n['layer']}: cosine {g['cosine']['value']:.2f} {_ci_text(g['cosine'])}; harmless refusal with "
        f"the refusal / harmfulness direction added (same norm) {_value(n['add_post'])} / {_value(n['add_inst'])}; "
        f"alarming controls sit at {_num(g['instruction']['alarming_relative_position']['value'])} (harmfulness) "
        f"vs {_num(g['post_instruction']['alarming_relative_position']['value'])} (refusal) of the way from "
        f"harmless to harmful, difference {_num(alarming['value'], '+.2f')} {_ci_text(alarming)}"
    )
    return (
        "replicated" if different and acts else "partially" if different or acts else "not replicated"
    ), numbers


def dimensionality_verdicts(
    geo: dict[str, Any], causal: dict[str, Any], settings: DimensionalitySettings
) -> list[dict[str, str]]:
    """One ``{paper, claim, verdict, reason}`` per claim, each derived by its rule in ``VERDICT_RULES``."""
    derived = {
        (OWN_PAPER, "refusal-multidimensional"): _multidimensional(geo, causal, settings),
        (OWN_PAPER, "dimensionality-varies-with-depth"): _varies_with_depth(geo, causal),
        (OWN_PAPER, "domain-dependent-directions"): _domain_dependent(geo, causal, settings),
        (OWN_PAPER, "harmfulness-refusal-loosely-linked"): _loosely_linked(geo, causal, settings),
        (CONES_PAPER, "refusal-concept-cones"): _cones(geo, causal, settings),
        (HARMFULNESS_PAPER, "harmfulness-distinct-from-refusal"): _distinct(geo, causal, settings),
    }
    return [
        {"paper": paper, "claim": claim, "verdict": verdict, "reason": reason}
        for (paper, claim), (verdict, reason) in derived.items()
    ]


def per_layer_table(geo: dict[str, Any], causal: dict[str, Any]) -> pd.DataFrame:
    """One row per (layer, position, estimator): the estimate, its 95% CI, n and what it counts."""
    rows = []
    for r in geo["dimensionality"]:
        base = {
            "layer": r["layer"],
            "position": r["position"],
            "token": r["token"],
            "selected_position": r["selected"],
        }
        if r.get("degenerate"):
            for estimator in ("spectral", "probe"):
                if estimator == r["estimator"]:
                    rows.append(
                        base
                        | {"estimator": estimator, "k": 0, "note": "every prompt has the same activation"}
                    )
            continue
        ci = r["ci95"]
        n = {"n_harmful": r["n_harmful"], "n_harmless": r["n_harmless"]}
        if r["estimator"] == "spectral":
            rows.append(
                base
                | n
                | {
                    "estimator": "spectral (parallel analysis)",
                    "k": r["k"],
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    "control": f"permutation null, 95th pct of top eigenvalue = {r['null_threshold']:.3f}",
                }
            )
            pr_ci = r["participation_ratio_ci95"]
            rows.append(
                base
                | n
                | {
                    "estimator": "spectral participation ratio",
                    "k": r["participation_ratio"],
                    "ci_low": pr_ci[0],
                    "ci_high": pr_ci[1],
                    "control": "excess over the null threshold",
                }
            )
        else:
            rows.append(
                base
                | n
                | {
                    "estimator": "probe (INLP)",
                    "k": r["k"],
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    "control": f"chance threshold {r['chance_threshold']:.3f}"
                    + (" (capped)" if r["capped"] else ""),
                }
            )
    selected = geo["selected"]
    for layer, sweep in causal["sweeps"].items():
        base = {
            "layer": int(layer),
            "position": selected["position"],
            "token": selected["token"],
            "selected_position": True,
        }
        if sweep.get("degenerate"):
            continue
        for name, label in (
            ("spectral", "causal (top-k spectral ablated)"),
            ("random", "causal control (k random directions)"),
            ("probe", "causal (top-k INLP ablated)"),
        ):
            if name not in sweep:
                continue
            found = sweep[name]
            rows.append(
                base
                | {
                    "estimator": label,
                    "k": found["k"] if found["crossed"] else None,
                    "ci_low": found["ci95"][0],
                    "ci_high": found["ci95"][1],
                    "n_harmful": found["n"],
                    "control": f"not below threshold up to k={found['max_k_evaluated']}"
                    if not found["crossed"]
                    else "",
                }
            )
    return pd.DataFrame(rows)


def metrics_stage(params: Params, name: str, geometry_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The per-layer table (``per_layer.csv``), domain tables and ``metrics.json`` with derived verdicts."""
    from mechatlas.provenance import provenance, write_result

    settings = params.dimensionality
    paths = {part: geometry_dir / f"{part}.json" for part in ("geometry", "causal")}
    for part, path in paths.items():
        if not path.exists():
            raise ArtifactError(f"{path}: missing; run `mechatlas dimensionality {part}` first")
    geo, causal = (json.loads(path.read_text()) for path in paths.values())
    table = per_layer_table(geo, causal)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "per_layer.csv", ".csv") as tmp:
        table.to_csv(tmp, index=False)
    layer = str(geo["selected"]["layer"])
    domain_rows = []
    dom = geo["domains"].get(layer, {})
    for d in dom.get("domains", []) if "dimensionality" in dom else []:
        dim = dom["dimensionality"][d]
        lodo = causal.get("lodo", {}).get(d, {})
        domain_rows.append(
            {
                "domain": d,
                "layer": int(layer),
                "n_harmful": dom["n_harmful"][d],
                "spectral_k": dim["k"],
                "spectral_ci_low": dim["ci95"][0],
                "spectral_ci_high": dim["ci95"][1],
                "split_half_cosine": dom["split_half_cosine"][d],
                "cosine_with_pooled": dom["cosine_with_pooled"][d],
                "lodo_cosine_with_own": dom["lodo_cosine_with_own"][d],
                **{f"refusal_{k}": v["value"] for k, v in lodo.items()},
                **{f"refusal_{k}_n": v["n"] for k, v in lodo.items()},
            }
        )
    with atomic_path(out_dir / "domains.csv", ".csv") as tmp:
        pd.DataFrame(domain_rows).to_csv(tmp, index=False)
    replicates = dimensionality_verdicts(geo, causal, settings)
    per_layer = {
        "selected": geo["selected"],
        "n": geo["n"],
        "table": table.replace({np.nan: None}).to_dict(orient="records"),
    }
    metrics = {
        "experiment": EXPERIMENT,
        "dimensionality": per_layer,
        "domains": geo["domains"],
        "harmfulness_vs_refusal": geo["harmfulness_vs_refusal"],
        "causal": causal,
        "verdict_rules": VERDICT_RULES,
        "settings": settings.model_dump(mode="json"),
        "inputs": {
            "activations": f"data/activations/{name}/ (refusal_direction stage; train and val, kept prompts)",
            "selection": f"data/results/refusal_direction/{name}/direction.json",
        },
    }
    write_result(
        out_dir / "metrics.json",
        metrics=_json_safe(metrics),
        replicates=replicates,
        methods=METHODS,
        provenance=provenance(
            params,
            sections=["dimensionality", "refusal_direction", "run"],
            model_name=name,
            model_id=params.models[name].source,
            model_revision=params.models[name].revision,
            target=str(out_dir / "metrics.json"),
            seeds={"dimensionality": settings.seed, "refusal_direction": params.refusal_direction.seed},
        ),
    )
    return {"metrics": metrics, "replicates": replicates}
