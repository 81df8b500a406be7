"""File-level stages of the dimensionality study: how many dimensions refusal occupies, per layer and domain.

The study reuses the refusal-direction replication (``mechatlas.experiments.refusal_direction``) instead of
recomputing it: it reads the saved post-instruction activations (``data/activations/<model>/``) and the
selected direction (``data/results/refusal_direction/<model>/direction.json``). The only activations it
extracts itself are the ones that stage does not save, at the last *instruction* token (Zhao et al.,
arXiv 2507.11878). Stages, each a Snakemake rule calling one function here:

1. ``instruction_activations``: residual stream at the last token of the user's text, every layer,
   for the prompts the refusal stage saved (same rows, same order).
2. ``geometry``: the activation-only analyses (``layers``, ``domains`` and ``harmfulness``, built on
   ``mechatlas.interp.geometry``): spectral and INLP dimensionality per layer (and position) with
   bootstrap CIs; per-domain directions, their cosines, principal angles, leave-one-domain-out
   directions and per-domain dimensionality; the harmfulness (instruction token) versus refusal
   (post-instruction) directions and where the over-refusal controls project on them.
3. ``causal``: the analyses that need the model (``interventions``, on ``causal``): ablating top-k
   subspaces against random ones, the cone check (Wollschläger et al., arXiv 2502.17420), the
   cross-domain transfer matrix, leave-one-domain-out ablation and harmfulness-versus-refusal steering.
4. ``metrics``: the per-layer table, the domain tables and ``metrics.json`` with verdicts derived by
   the rules in ``VERDICT_RULES`` (``verdicts``); 5. ``figures`` (``figures``).

Which prompts: the harmful class is the train and val harmful prompts the model refuses (the refusal
stage's ``kept`` filter, as in Arditi et al., arXiv 2406.11717); the harmless class is the kept harmless prompts *without*
the ``alarming`` domain, which is held out as the over-refusal control (harmless but alarming-looking).
Interventions are measured on test prompts, which no direction was estimated from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mechatlas.config import DimensionalityPositions, DimensionalitySettings, Params
from mechatlas.errors import ArtifactError
from mechatlas.experiments.common import json_safe, judge_panel_record
from mechatlas.experiments.dimensionality.artefacts import (
    read_instruction_activations,
    read_saved_activations,
    read_selection,
)
from mechatlas.experiments.dimensionality.domains import domains_by_layer
from mechatlas.experiments.dimensionality.groups import ALARMING, PromptGroups, prompt_groups
from mechatlas.experiments.dimensionality.harmfulness import harmfulness_by_layer, harmfulness_fit_rows
from mechatlas.experiments.dimensionality.layers import detection_at_selected, dimensionality_table
from mechatlas.experiments.dimensionality.resampling import GroupClusters
from mechatlas.experiments.dimensionality.tables import domain_table, per_layer_table
from mechatlas.experiments.dimensionality.verdicts import METHODS, VERDICT_RULES, dimensionality_verdicts
from mechatlas.interp.threads import one_thread, torch_threads
from mechatlas.io import atomic_path, read_safetensors, write_json

EXPERIMENT = "dimensionality"


def instruction_activations(
    params: Params, name: str, act_dir: Path, out_path: Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Residual stream entering every block at the last token of the user's text, for the saved prompts.

    That token sits just before the post-instruction tokens, at offset ``-(P + 1)`` from the end of a
    left-padded prompt with ``P`` post-instruction tokens. Rows follow ``index.parquet``.
    """
    from numpy.lib.format import open_memmap

    from mechatlas.experiments.common import fit_batch_sizes, load, model_spec
    from mechatlas.interp.activations import iter_activations, post_instruction_tokens

    saved = read_saved_activations(act_dir)
    model = load(params, model_spec(params, name))
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    offset = -(len(post.token_ids) + 1)
    texts = saved.index["text"].tolist()
    params = fit_batch_sizes(params, model, texts, keep_residual=True)
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


def _fit_clusters(params: Params, name: str, groups: PromptGroups) -> GroupClusters | None:
    """The clusters (organism framings, or source sets) of the harmful, harmless and alarming prompts, in
    row order; None when the prompts carry none (intervals then resample prompts)."""
    from mechatlas.experiments.common import load_prompts, model_spec, prompt_clusters

    spec = model_spec(params, name)
    frames = {"harmful": groups.harmful, "harmless": groups.harmless, "alarming": groups.alarming}
    wanted = {str(i) for frame in frames.values() for i in frame["id"]}
    clusters = prompt_clusters([r for r in load_prompts(params, spec) if r.id in wanted], spec)
    if clusters is None:
        return None
    missing = sorted(wanted - set(clusters.of))
    if missing:
        raise ArtifactError(
            f"prompt {missing[0]} of the saved activations is not in the prompt set of `{name}`; "
            "rerun the refusal-direction activations stage"
        )
    return GroupClusters(
        {label: [clusters.of[str(i)] for i in frame["id"]] for label, frame in frames.items()}, clusters.unit
    )


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
    with one_thread():
        table, tensors = dimensionality_table(saved, groups, position_indices, selected, settings)
        harmful_sel = saved.resid(groups.harmful, selected)
        harmless_sel = saved.resid(groups.harmless, selected)
        clusters = _fit_clusters(params, name, groups)
        domains, domain_tensors = domains_by_layer(
            harmful_sel,
            groups.harmful["domain"].tolist(),
            harmless_sel,
            settings,
            None if clusters is None else clusters.pair(),
        )
        tensors |= domain_tensors
        instruction_acts = {
            label: read_instruction_activations(instruction_path, getattr(groups, label))
            for label in ("harmful", "harmless", "alarming")
        }
        post_acts = {
            "harmful": harmful_sel,
            "harmless": harmless_sel,
            "alarming": saved.resid(groups.alarming, selected),
        }
        fit_rows, held_out = harmfulness_fit_rows(groups)
        alarming_refused = groups.alarming["refusal_score"].to_numpy() > 0
        harmfulness, harmfulness_tensors = harmfulness_by_layer(
            instruction_acts, post_acts, fit_rows, alarming_refused, settings, clusters
        )
        tensors |= harmfulness_tensors
        detection = detection_at_selected(harmful_sel, harmless_sel, int(selection["layer"]), table, settings)

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
        "detection_limits": detection,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "subspaces.safetensors", ".safetensors") as tmp:
        save_file({k: v.to(torch.float64).contiguous() for k, v in tensors.items()}, str(tmp))
    write_json(out_dir / "geometry.json", json_safe(record))
    return record


# --- stage 3: interventions -------------------------------------------------------------------------------


def _test_prompts(params: Params, name: str) -> dict[str, Any]:
    """Capped test prompts per group (harmful, harmless without the controls, alarming controls)."""
    from mechatlas.experiments.common import cap_per_domain, load_prompts, model_spec, prompt_clusters
    from mechatlas.experiments.dimensionality.causal import HeldOutPrompts

    settings = params.dimensionality
    spec = model_spec(params, name)
    records = [r for r in load_prompts(params, spec) if r.split == "test"]
    clusters = prompt_clusters(records, spec)
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
            tuple(r.id for r in capped),
            tuple(r.text for r in capped),
            tuple(r.domain for r in capped),
            None if clusters is None else tuple(clusters.of[r.id] for r in capped),
        )
    return out


def refusal_meter(params: Params, model: Any, batch_size: int) -> Any:
    """The interventions' ``RefusalMeter`` under ``dimensionality.judge``, holding the classifier that
    ``refusal_direction.judge`` names when ``panel_judges`` asks for it."""
    from mechatlas.config import CausalJudge
    from mechatlas.interp.judges import RefusalMeter, load_judge
    from mechatlas.interp.models import resolve_device
    from mechatlas.interp.scores import refusal_token_ids

    settings, refusal = params.dimensionality, params.refusal_direction
    classifier = None
    if CausalJudge.classifier in settings.panel_judges:
        classifier = load_judge(
            refusal.judge,
            refusal.judge_refusal_label,
            allow_hub=params.run.allow_hub,
            device=resolve_device(params.run.device),
        )
    return RefusalMeter(
        model=model,
        refusal_ids=tuple(refusal_token_ids(model.tokenizer, refusal.refusal_tokens, model.chat_format)),
        judge=settings.judge.value,
        substrings=tuple(refusal.refusal_substrings),
        max_new_tokens=settings.max_new_tokens,
        batch_size=batch_size,
        reply_judge=classifier,
    )


def causal_stage(
    params: Params, name: str, geometry_dir: Path, out_dir: Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Every intervention analysis; writes ``causal.parquet`` (one row per prompt and condition, under
    ``judge``) and ``causal.json`` (rates with their intervals, causal dimensions with bootstrap CIs; under
    ``judge_panel``, the same summary from each other judge of ``panel_judges``)."""
    from mechatlas.experiments.common import fit_batch_sizes, load, model_spec
    from mechatlas.experiments.dimensionality.interventions import causal_analyses
    from mechatlas.interp.judges import RefusalMeter

    settings, refusal = params.dimensionality, params.refusal_direction
    geo_path = geometry_dir / "geometry.json"
    if not geo_path.exists():
        raise ArtifactError(f"{geo_path}: missing; run `mechatlas dimensionality geometry` first")
    geo = json.loads(geo_path.read_text())
    tensors = read_safetensors(
        geometry_dir / "subspaces.safetensors", "run `mechatlas dimensionality geometry` again"
    )
    with torch_threads(threads):
        prompts = _test_prompts(params, name)  # read and checked before the model loads
        model = load(params, model_spec(params, name))
        texts = [t for group in prompts.values() for t in group.texts]
        params = fit_batch_sizes(params, model, texts, new_tokens=settings.max_new_tokens)
        refusal = params.refusal_direction
        batch_size = max(params.run.batch_size, refusal.scoring_batch_size)  # forward passes only
        meter = refusal_meter(params, model, batch_size)

        def analyse(meter: RefusalMeter) -> tuple[dict[str, Any], Any]:  # (summary, per-prompt rows)
            return causal_analyses(
                meter,
                prompts,
                geo,
                tensors,
                settings=settings,
                coefficient=refusal.addition_coefficient,
                batch_size=batch_size,
            )

        summary, rows = analyse(meter)
        summary["judge_panel"] = {  # the same analyses under every other judge, for the verdict panel
            other.value: analyse(meter.under(other.value))[0]
            for other in settings.panel_judges
            if other is not settings.judge
        }
    rows.insert(0, "model", name)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "causal.parquet", ".parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    write_json(out_dir / "causal.json", json_safe(summary))
    return summary


OPTIMISED_CLAIM = "optimised-directions-fewer-side-effects"  # the claim the optimised record decides


def _optimised_under(optimised: dict[str, Any], judge: str) -> dict[str, Any] | None:
    """The optimised record as ``judge`` saw it: RDO's and the difference in means' bypass and induce from
    its own measurements (``rdo.judge_panel``), the judge-free KL as measured; None without them."""
    rdo = optimised.get("rdo", {})
    panel = rdo.get("judge_panel", {}).get(judge)
    if panel is None:
        return None
    seeds = [entry | judged for entry, judged in zip(rdo["rdo"], panel["rdo"], strict=True)]
    dim = rdo["difference_in_means"] | panel["difference_in_means"]
    return optimised | {"rdo": rdo | {"rdo": seeds, "difference_in_means": dim}}


def verdicts_by_judge(
    geo: dict[str, Any], causal: dict[str, Any], optimised: dict[str, Any], settings: DimensionalitySettings
) -> tuple[list[dict[str, str]], dict[str, dict[str, str]], list[str]]:
    """The verdicts (derived under ``settings.judge``), the panel (judge -> claim -> verdict) and the flips.

    Each other judge of ``panel_judges`` has its own run of the interventions in ``causal["judge_panel"]``
    and of the optimised directions' bypass and induce in ``optimised["rdo"]["judge_panel"]``; its verdicts
    come from those numbers by the same rules. A claim a judge has no numbers for is left out of its row.
    """
    judge = settings.judge.value
    by_judge = {judge: dimensionality_verdicts(geo, causal | {"optimised": optimised}, settings)}
    for other, numbers in causal.get("judge_panel", {}).items():
        seen = _optimised_under(optimised, other)
        derived = dimensionality_verdicts(geo, numbers | {"optimised": seen or {}}, settings)
        by_judge[other] = [v for v in derived if seen is not None or v["claim"] != OPTIMISED_CLAIM]
    return judge_panel_record(by_judge, judge)


def metrics_stage(params: Params, name: str, geometry_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The per-layer table (``per_layer.csv``), domain tables and ``metrics.json`` with derived verdicts."""
    from mechatlas.records import provenance, write_result

    settings = params.dimensionality
    paths = {part: geometry_dir / f"{part}.json" for part in ("geometry", "causal", "optimised")}
    for part, path in paths.items():
        if not path.exists():
            raise ArtifactError(f"{path}: missing; run `mechatlas dimensionality {part}` first")
    geo, causal, optimised = (json.loads(path.read_text()) for path in paths.values())
    table = per_layer_table(geo, causal)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "per_layer.csv", ".csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "domains.csv", ".csv") as tmp:
        domain_table(geo, causal).to_csv(tmp, index=False)
    selected = table[table["selected_position"]].pivot_table(index="layer", columns="estimator", values="k")
    with atomic_path(out_dir / "k_by_layer.csv", ".csv") as tmp:  # the DVC plot: k per layer, per estimator
        selected.reset_index().to_csv(tmp, index=False)
    replicates, panel, flips = verdicts_by_judge(geo, causal, optimised, settings)
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
        "optimised": {k: v for k, v in optimised.items() if k not in ("experiment", "model", "settings")},
        "verdict_rules": VERDICT_RULES,
        "verdicts_by_judge": panel,
        "judge_flips": flips,
        "settings": settings.model_dump(mode="json"),
        "inputs": {
            "activations": f"data/activations/{name}/ (refusal_direction stage; train and val, kept prompts)",
            "selection": f"data/results/refusal_direction/{name}/direction.json",
        },
    }
    write_result(
        out_dir / "metrics.json",
        metrics=json_safe(metrics),
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
            stage="dimensionality_metrics",
        ),
    )
    return {"metrics": metrics, "replicates": replicates}
