"""File-level stages of the refusal-direction replication (Arditi et al. 2024, arXiv 2406.11717).

Each stage reads its inputs, calls the library (``activations``, ``directions``, ``interventions``,
``evaluation``) and writes its outputs atomically. Snakemake rules and ``mechatlas refusal`` call
these functions and nothing else.

Outputs, for a model named ``<model>``:

- ``data/activations/<model>/``: per-prompt residual activations at the post-instruction positions,
  all layers, for the train and val splits of harmful and harmless prompts (``<label>_<split>.npy``,
  shape ``(prompt, position, layer, d_model)``, float32), ``index.parquet`` (row of each prompt, its
  source set, its refusal score and whether it was kept), ``means.safetensors`` (float64 class means of
  the kept train prompts, never a held-out one) and ``meta.json``. The dimensionality experiment reads
  these.
- ``data/results/refusal_direction/<model>/``: ``candidates.parquet`` (every position × layer with its
  scores), ``direction.safetensors`` and ``direction.json`` (the selection), ``orthogonalization.json``,
  ``evaluations.parquet`` (one row per prompt and condition) and ``metrics.json`` (the result record).
- ``data/models/refusal_orthogonalized/<model>/``: the weight-orthogonalized checkpoint.
- ``reports/figures/refusal_direction/<model>/``: the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mechatlas.config import DType, Params, RefusalJudge
from mechatlas.errors import ArtifactError
from mechatlas.experiments import registry
from mechatlas.experiments.common import (
    DIRECTION_TENSORS,
    batch_record,
    cap_per_domain,
    check_store_model,
    fit_batch_sizes,
    json_safe,
    load,
    load_prompts,
    model_fingerprint,
    model_spec,
    prompt_clusters,
    read_direction,
)
from mechatlas.experiments.refusal_direction.activations import (
    GROUPS,
    activation_meta,
    held_out_control,
    held_out_group,
    index_rows,
    kept_by_refusal,
    prompt_group,
    train_prompts,
)
from mechatlas.interp.activations import ActivationStore, group_file, write_store
from mechatlas.interp.models import DEFAULT_CHAT_DATE, load_model
from mechatlas.io import atomic_dir, atomic_path, file_digests, write_json
from mechatlas.prompts import PromptRecord

EXPERIMENT = "refusal_direction"
ACTIVATIONS_REMEDY = "run `mechatlas refusal activations` first"


METHODS = list(registry.get(EXPERIMENT).methods)  # taxonomy ids, as the result record lists them


# --- stage 1: activations -----------------------------------------------------------------------------


def extract_activations(params: Params, name: str, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Stream post-instruction activations of the train and val prompts to ``out_dir``; class means in float64."""
    from numpy.lib.format import open_memmap

    from mechatlas.interp.activations import iter_activations, post_instruction_tokens
    from mechatlas.interp.directions import MeanAccumulator
    from mechatlas.interp.hooks import resid_pre
    from mechatlas.interp.scores import refusal_score, refusal_token_ids

    settings = params.refusal_direction
    spec = model_spec(params, name)
    records = load_prompts(params, spec)  # read and checked before the model loads
    model = load(params, spec)
    params = fit_batch_sizes(params, model, [r.text for r in records], keep_residual=True)
    post = post_instruction_tokens(model.tokenizer, model.chat_format)
    refusal_ids = refusal_token_ids(model.tokenizer, settings.refusal_tokens, model.chat_format)
    rows: list[dict[str, Any]] = []
    means: dict[str, dict[str, MeanAccumulator]] = {}
    shape_tail = (len(post.positions), model.n_layers, model.d_model)
    with atomic_dir(out_dir) as tmp:
        for label, split in GROUPS:
            group = prompt_group(records, label, split, spec.prompts)
            if split == "train":
                group = train_prompts(group, settings.n_train, settings.seed)
            array = open_memmap(
                tmp / group_file(f"{label}_{split}"),
                mode="w+",
                dtype=np.float32,
                shape=(len(group), *shape_tail),
            )
            kept_mean, all_mean = MeanAccumulator(), MeanAccumulator()
            batches = iter_activations(
                model,
                [r.text for r in group],
                batch_size=params.run.batch_size,
                progress=progress,
                desc=f"activations {label}/{split}",
            )
            for batch in batches:
                array[batch.start : batch.start + len(batch.resid)] = batch.resid.numpy()
                scores = refusal_score(batch.last_logits, refusal_ids)  # type: ignore[arg-type]  # with_logits is on
                controls = held_out_control(group[batch.start : batch.start + len(batch.resid)])
                kept = kept_by_refusal(
                    scores,
                    label,
                    filter_by_refusal_score=settings.filter_by_refusal_score,
                    controls=controls,
                )
                if (~controls).any():
                    all_mean.update(batch.resid[~controls])
                if kept.any():
                    kept_mean.update(batch.resid[kept])
                rows += index_rows(group, label, split, batch.start, scores, kept)
            array.flush()
            del array
            means[f"{label}_{split}"] = {"kept": kept_mean, "all": all_mean}
        index = pd.DataFrame(rows)
        fallback = [label for label in ("harmful", "harmless") if means[f"{label}_train"]["kept"].count == 0]
        tensors = {
            f"{label}_mean": means[f"{label}_train"]["all" if label in fallback else "kept"]
            .mean()
            .contiguous()
            for label in ("harmful", "harmless")
        }
        meta = activation_meta(
            model,
            post,
            index,
            name=name,
            hooks=[resid_pre(layer) for layer in range(model.n_layers)],
            fallback=fallback,
            filter_by_refusal_score=settings.filter_by_refusal_score,
            refusal_tokens=settings.refusal_tokens,
            refusal_ids=refusal_ids,
        )
        meta["model"]["fingerprint"] = model_fingerprint(spec)  # later stages refuse a store of another model
        meta |= batch_record(params)
        write_store(tmp, [f"{label}_{split}" for label, split in GROUPS], index, tensors, meta)
    return meta


# --- stage 2: candidate directions and selection ------------------------------------------------------


def select(
    params: Params, name: str, act_dir: Path, out_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Score every (position, layer) difference-in-means candidate and select the refusal direction."""
    from safetensors.torch import save_file

    from mechatlas.experiments.refusal_direction.selection import (
        SelectionFilters,
        candidate_table,
        filter_columns,
        select_direction,
        selection_info,
        validation_texts,
    )
    from mechatlas.interp.candidates import score_candidates
    from mechatlas.interp.directions import difference_in_means
    from mechatlas.interp.scores import last_logits, refusal_score, refusal_token_ids

    settings = params.refusal_direction
    spec = model_spec(params, name)
    store = ActivationStore.open(act_dir, ACTIVATIONS_REMEDY)
    check_store_model(store, spec)
    meta, means = store.meta, store.means()
    candidates = difference_in_means(means["harmful_mean"], means["harmless_mean"])  # (P, L, D) float64
    val = validation_texts(store.index, settings.n_val, settings.seed, str(act_dir / "index.parquet"))
    model = load(params, spec)
    refusal_ids = refusal_token_ids(model.tokenizer, settings.refusal_tokens, model.chat_format)
    params = fit_batch_sizes(
        params, model, val["harmful"] + val["harmless"], reserved_rows=len(val["harmless"])
    )
    settings = params.refusal_direction

    n_pos, n_layers, _ = candidates.shape
    grid = [(p, layer) for p in range(n_pos) for layer in range(n_layers)]
    vectors = torch.stack([candidates[p, layer] for p, layer in grid])
    layers = torch.tensor([layer for _, layer in grid])
    scores = score_candidates(
        model,
        vectors,
        layers,
        val["harmful"],
        val["harmless"],
        refusal_ids=refusal_ids,
        coefficient=settings.addition_coefficient,
        batch_size=settings.scoring_batch_size,
        progress=progress,
    )
    table = candidate_table(meta, grid, vectors, scores)
    filters = SelectionFilters(settings.max_layer_fraction, settings.max_kl, settings.min_induce)
    table = pd.concat([table, filter_columns(table, n_layers, filters)], axis=1)
    chosen = select_direction(table, n_layers, filters)
    table["selected"] = (table["position"] == chosen.position) & (table["layer"] == chosen.layer)
    p_index = meta["positions"].index(chosen.position)
    direction = candidates[p_index, chosen.layer].clone()

    baseline = {
        label: float(
            refusal_score(last_logits(model, texts, batch_size=params.run.batch_size), refusal_ids).mean()
        )
        for label, texts in val.items()
    }
    info = selection_info(
        meta,
        chosen,
        filters,
        model={"name": name, "id": model.model_id, "revision": model.revision},
        norm=float(direction.norm()),
        baseline=baseline,
        val=val,
        n_candidates=len(grid),
        addition_coefficient=settings.addition_coefficient,
        refusal_tokens={"strings": settings.refusal_tokens, "ids": refusal_ids},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "candidates.parquet", ".parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out_dir / DIRECTION_TENSORS, ".safetensors") as tmp:
        save_file(
            {
                "direction": direction,
                "unit_direction": direction / direction.norm(),
                "candidates": candidates.clone(),
            },
            str(tmp),
        )
    info |= batch_record(params)
    info["sha256"] = file_digests(out_dir, [DIRECTION_TENSORS])  # readers refuse a direction changed since
    write_json(out_dir / "direction.json", info)
    return info


# --- stage 3: weight orthogonalization ----------------------------------------------------------------


def orthogonalize(
    params: Params, name: str, res_dir: Path, act_dir: Path, checkpoint_dir: Path
) -> dict[str, Any]:
    """Write the orthogonalized checkpoint and check it against hook ablation (float32, max |Δlogit|).

    For an architecture where the edit is not equivalent, the checkpoint folder holds only a note
    saying why, and the report says ``supported: false``.
    """
    from mechatlas.interp.interventions import (
        InterventionError,
        ablation_hooks,
        max_logit_gap,
        save_orthogonalized_checkpoint,
    )

    direction, info = read_direction(res_dir)
    model = load(params, model_spec(params, name), dtype=DType.float32)  # the equivalence is a float32 claim
    index = ActivationStore.open(act_dir, ACTIVATIONS_REMEDY).index
    val = index[index["split"] == "val"]
    texts = [*val[val["label"] == "harmful"]["text"][:16], *val[val["label"] == "harmless"]["text"][:16]]
    weights = sum(t.numel() * t.element_size() for t in model.bridge.original_model.state_dict().values())
    params = fit_batch_sizes(params, model, texts, reserved_bytes=weights)  # the edited copy loads later
    report: dict[str, Any] = {
        "model": {"name": name, "id": model.model_id},
        "checkpoint": str(checkpoint_dir),
        "dtype": "float32",
        "tolerance": params.refusal_direction.orthogonalization_tolerance,
        "n_prompts": len(texts),
        "layer": info["layer"],
        "position": info["position"],
    }
    note = {"orthogonalized_against": f"refusal direction of {name} ({model.model_id})", **report}
    try:
        save_orthogonalized_checkpoint(model, direction, checkpoint_dir, note=note)
    except InterventionError as exc:
        with atomic_dir(checkpoint_dir) as tmp:
            (tmp / "UNSUPPORTED.md").write_text(f"# No orthogonalized checkpoint\n\n{exc}\n")
        report |= {"supported": False, "reason": str(exc), "max_abs_logit_diff": None}
    else:
        chat = model.chat_format
        edited = load_model(
            checkpoint_dir,
            device=params.run.device,
            dtype=DType.float32,
            system_prompt=chat.system_prompt,
            chat_date=chat.date or DEFAULT_CHAT_DATE,
        )
        gap = max_logit_gap(
            model,
            edited,
            texts,
            fwd_hooks=ablation_hooks(model.n_layers, direction),
            batch_size=params.run.batch_size,
        )
        unedited_gap = max_logit_gap(model, edited, texts, batch_size=params.run.batch_size)
        report |= {
            "supported": True,
            "max_abs_logit_diff": gap,
            "max_abs_logit_diff_without_ablation": unedited_gap,
        }
    write_json(res_dir / "orthogonalization.json", report)
    return report


# --- stage 4: evaluation ------------------------------------------------------------------------------


def evaluate(params: Params, name: str, res_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Generate under baseline, ablation, addition/subtraction and their random controls; write metrics.json."""
    from mechatlas.experiments.refusal_direction.judging import evaluation_judges
    from mechatlas.experiments.refusal_direction.over_refusal import (
        evaluate_over_refusal,
        over_refusal_prompts,
    )
    from mechatlas.experiments.refusal_direction.summaries import mean_with_ci, result_metrics, summarize
    from mechatlas.experiments.refusal_direction.verdicts import (
        VERDICT_RULES,
        VerdictInputs,
        judge_panel,
    )
    from mechatlas.interp.directions import random_direction
    from mechatlas.interp.evaluation import (
        EvalPrompt,
        capability_cost,
        evaluate_conditions,
        refusal_token_retention,
        standard_conditions,
    )
    from mechatlas.interp.scores import refusal_context_ids, refusal_token_ids
    from mechatlas.records import provenance, write_result

    settings = params.refusal_direction
    spec = model_spec(params, name)
    direction, info = read_direction(res_dir)
    ortho_path = res_dir / "orthogonalization.json"
    if not ortho_path.exists():
        raise ArtifactError(f"{ortho_path}: missing; run `mechatlas refusal orthogonalize` first")
    ortho = json.loads(ortho_path.read_text())
    records = load_prompts(params, spec)  # read and checked before the model loads
    model = load(params, spec)
    test: list[PromptRecord] = []
    for label in ("harmful", "harmless"):  # never a held-out prompt: those are the over-refusal groups
        group = prompt_group(records, label, "test", spec.prompts)
        kept = [r for r in group if held_out_group(r.label, r.domain, r.source) is None]
        test += cap_per_domain(kept, settings.n_test, settings.seed)
    prompts = [EvalPrompt(r.id, r.text, r.label, r.domain) for r in test]
    benign = over_refusal_prompts(records, settings.n_test, settings.seed)  # alarming controls, XSTest safe
    texts = [p.text for p in prompts] + [r.text for group in benign.values() for r in group]
    params = fit_batch_sizes(params, model, texts, new_tokens=settings.max_new_tokens)
    settings = params.refusal_direction

    control = random_direction(model.d_model, float(direction.norm()), settings.seed)
    conditions = standard_conditions(
        model.n_layers, direction, info["layer"], control, settings.addition_coefficient
    )
    judges, judge_names, has_classifier = evaluation_judges(params)
    refusal_ids = refusal_token_ids(model.tokenizer, settings.refusal_tokens, model.chat_format)
    evaluations = evaluate_conditions(
        model,
        prompts,
        conditions,
        refusal_ids=refusal_ids,
        judges=judges,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.generation_batch_size,
        progress=progress,
    )
    harmless = evaluations[(evaluations["condition"] == "baseline") & (evaluations["label"] == "harmless")]
    cost = capability_cost(
        model, list(harmless["prompt"]), list(harmless["reply"]), conditions, batch_size=params.run.batch_size
    )
    cost["id"] = harmless["id"].to_numpy()[cost["prompt_index"].to_numpy()]
    refused = evaluations[(evaluations["condition"] == "baseline") & (evaluations["label"] == "harmful")]
    ablation = next(c for c in conditions if c.name == "ablation")
    retention = refusal_token_retention(
        model,
        list(refused["prompt"]),
        list(refused["reply"]),
        refusal_context_ids(model.tokenizer, settings.refusal_tokens, refusal_ids),
        ablation.harmful[1],
        batch_size=params.run.batch_size,
    )
    evaluations = evaluations.merge(
        cost.drop(columns="prompt_index").assign(label="harmless"),
        on=["condition", "id", "label"],
        how="left",
    )
    evaluations.insert(0, "model", name)
    with atomic_path(res_dir / "evaluations.parquet", ".parquet") as tmp:
        evaluations.to_parquet(tmp, index=False)

    clusters = prompt_clusters(test, spec)
    summary = summarize(
        evaluations,
        cost,
        judges=judge_names,
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
        clusters=clusters.of if clusters is not None else None,
        cluster_unit=clusters.unit if clusters is not None else None,
    )
    verdict_judge = {
        RefusalJudge.substring: "substring",
        RefusalJudge.logit_score: "logit",
        RefusalJudge.classifier: "classifier",
    }
    judge = verdict_judge[settings.verdict_judge]
    summary["capability"].setdefault("ablation", {})["refusal_token_retention"] = mean_with_ci(
        retention, resamples=settings.bootstrap_resamples, seed=settings.seed
    )
    inputs = VerdictInputs(
        rates=summary["refusal_rate"][judge],
        capability=summary["capability"],
        logit_gap=ortho.get("max_abs_logit_diff"),
        orthogonalization_tolerance=settings.orthogonalization_tolerance,
        capability_tolerance_nats=settings.capability_tolerance_nats,
        selection_passed_filters=info["passed_filters"],
        notes={"orthogonalization": ortho.get("reason", "")},
        max_harmless_kl=settings.max_harmless_kl,
        max_refusal_token_drop=settings.max_refusal_token_drop,
    )
    replicates, panel, flips = judge_panel(
        inputs, {j: summary["refusal_rate"][j] for j in judge_names}, verdict_judge=judge
    )
    metrics = result_metrics(
        experiment=EXPERIMENT,
        info=info,
        evaluations=evaluations,
        summary=summary,
        conditions=conditions,
        control={
            "seed": settings.seed,
            "norm": float(control.norm()),
            "cosine_with_direction": float(torch.nn.functional.cosine_similarity(control, direction, dim=0)),
        },
        classifier=settings.judge if has_classifier else None,
        verdict_judge=judge,
        orthogonalization=ortho,
        max_new_tokens=settings.max_new_tokens,
        addition_coefficient=settings.addition_coefficient,
        verdict_rules=VERDICT_RULES,
    )
    metrics["verdicts_by_judge"] = panel
    metrics["judge_flips"] = flips
    metrics["over_refusal"] = evaluate_over_refusal(
        model, benign, conditions, spec, summary["refusal_rate"], judges=judges, judge_names=judge_names,
        refusal_ids=refusal_ids, settings=settings, progress=progress,
    )  # fmt: skip
    metrics |= batch_record(params)
    if settings.capability_text is not None:
        from mechatlas.experiments.refusal_direction.heldout import heldout_capability, read_heldout_text

        pairs = read_heldout_text(Path(settings.capability_text))[: settings.capability_text_n]
        metrics["capability_heldout"] = heldout_capability(
            model,
            pairs,
            conditions,
            batch_size=params.run.batch_size,
            resamples=settings.bootstrap_resamples,
            seed=settings.seed,
        ) | {"source": settings.capability_text}
    write_result(
        res_dir / "metrics.json",
        metrics=json_safe(metrics),
        replicates=replicates,
        methods=METHODS,
        provenance=provenance(
            params,
            sections=["refusal_direction", "run"],
            model_name=name,
            model_id=model.model_id,
            model_revision=model.revision,
            target=str(res_dir / "metrics.json"),
            model_chat=model.chat_format.record(),
            seeds={"refusal_direction": settings.seed},
            stage="refusal_evaluate",
        ),
    )
    return {"metrics": metrics, "replicates": replicates}
