"""What every experiment needs from params.yaml: the model a name refers to, its prompts, and JSON output.

These helpers turn configuration into library calls (``mechatlas.interp`` never reads params.yaml):
``resolve_model``/``model_spec`` find a model's entry, ``load`` opens it (the organism's checkpoint
folder, a local folder or a hub id), ``load_prompts`` reads its prompt set, ``cap_per_domain`` keeps a
balanced subset, and ``json_safe`` makes numbers writable as strict JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mechatlas.config import ORGANISM, DType, ModelSpec, Params
from mechatlas.errors import ArtifactError, ConfigError, ModelLoadError
from mechatlas.interp.activations import ActivationStore
from mechatlas.interp.models import LoadedModel, checkpoint_fingerprint, load_model
from mechatlas.io import check_digests, read_json, read_safetensors
from mechatlas.paths import ORGANISM_DIR, ORGANISM_INSTRUCTIONS, ORGANISM_PROMPTS
from mechatlas.prompts import PromptRecord, load_prompt_source, read_jsonl

# --- models and prompts -------------------------------------------------------------------------------


def resolve_model(params: Params, model: str, prompts: str | None = None) -> tuple[Params, str, ModelSpec]:
    """A model named in params.yaml, or any checkpoint folder / hub id (named after its last path part).

    Returns params with the model in ``models`` (so provenance can record it), its name and spec.
    """
    if model in params.models and prompts is None:
        return params, model, params.models[model]
    if model in params.models:
        spec = params.models[model].model_copy(update={"prompts": prompts})
        name = model
    else:
        keyed = [key for key, known in params.models.items() if _same_source(known.source, model)]
        if keyed:  # a checkpoint params.yaml already names: its outputs go under that key
            return resolve_model(params, keyed[0], prompts)
        spec = ModelSpec(source=model, prompts=prompts or ORGANISM)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.rstrip("/").replace("/", "--")).strip("-.") or "model"
        name = name.split("--")[-1] if Path(model).exists() else name
        if name in params.models:
            raise ConfigError(
                f"{model}: its outputs would go under `{name}`, which params.yaml's `models` uses for another "
                f"model (source `{params.models[name].source}`); add this checkpoint to `models` under a key "
                "of its own and pass that key to --model"
            )
    return params.model_copy(update={"models": {**params.models, name: spec}}), name, spec


def _same_source(known: str, given: str) -> bool:
    if known == given:
        return True
    return (
        known != ORGANISM
        and Path(known).exists()
        and Path(given).exists()
        and Path(known).resolve() == Path(given).resolve()
    )


def model_spec(params: Params, name: str) -> ModelSpec:
    if name not in params.models:
        raise ConfigError(
            f"model `{name}` is not in params.yaml's `models`; add it there, or give the CLI a checkpoint path or hub id"
        )
    return params.models[name]


def load(params: Params, spec: ModelSpec, *, dtype: DType | None = None) -> LoadedModel:
    """Open the model ``spec`` names on ``run.device`` in ``dtype`` (default ``run.dtype``)."""
    if spec.source == ORGANISM:
        return load_organism(ORGANISM_DIR, device=params.run.device, dtype=dtype or params.run.dtype)
    return load_model(
        spec.weights,
        device=params.run.device,
        dtype=dtype or params.run.dtype,
        allow_hub=params.run.allow_hub,
        revision=spec.revision,
        system_prompt=spec.system_prompt,
        chat_date=spec.chat_date,
    )


def fit_batch_sizes(
    params: Params,
    model: LoadedModel,
    texts: Sequence[str],
    *,
    new_tokens: int = 0,
    keep_residual: bool = False,
    reserved_rows: int = 0,
    reserved_bytes: int = 0,
) -> Params:
    """``params`` with its batch sizes fitted to the memory free now (``run.batch_sizes: auto``), else as is.

    Each size is ``mechatlas.interp.memory.batch_size_for`` of the memory free on the model's device, with
    rows as long as the longest of ``texts`` in the chat template (plus ``new_tokens`` for replies and for
    generation's key-value cache), and at most the size written in params.yaml. ``keep_residual``: the
    stage keeps every layer's residual stream per row (activation extraction). ``reserved_rows``: rows
    whose every-layer residual stream lives for the whole stage (candidate scoring's clean pass) come
    off the free memory first, as do ``reserved_bytes`` (a second model the stage loads later). Call it
    once the model is loaded, so its weights are already counted.
    """
    from mechatlas.config import BatchSizes
    from mechatlas.interp.chat import chat_prompts
    from mechatlas.interp.memory import RowShape, available_bytes, batch_size_for, row_bytes

    if params.run.batch_sizes == BatchSizes.fixed or not texts:
        return params
    rendered = chat_prompts(model.tokenizer, list(texts), model.chat_format)
    seq = max(len(ids) for ids in model.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    shape = RowShape.of(model.bridge.cfg, model.dtype)
    kept = reserved_rows * shape.n_layers * seq * shape.d_model * shape.dtype_bytes
    free = available_bytes(model.device) - kept - reserved_bytes
    forward = row_bytes(shape, seq + new_tokens, keep_residual=keep_residual)
    decode = row_bytes(shape, seq, new_tokens=new_tokens)
    rd = params.refusal_direction
    return params.model_copy(
        update={
            "run": params.run.model_copy(
                update={"batch_size": batch_size_for(free, forward, cap=params.run.batch_size)}
            ),
            "refusal_direction": rd.model_copy(
                update={
                    "scoring_batch_size": batch_size_for(free, forward, cap=rd.scoring_batch_size),
                    "generation_batch_size": batch_size_for(free, decode, cap=rd.generation_batch_size),
                }
            ),
        }
    )


def batch_record(params: Params) -> dict[str, Any]:
    """The batch sizes a stage ran with, for its output; empty under ``run.batch_sizes: fixed`` (they are
    params.yaml's, and records written before the option existed stay byte-identical)."""
    from mechatlas.config import BatchSizes

    if params.run.batch_sizes == BatchSizes.fixed:
        return {}
    rd = params.refusal_direction
    return {
        "batch_sizes": {
            "rule": "auto (mechatlas.interp.memory)",
            "forward": params.run.batch_size,
            "scoring": rd.scoring_batch_size,
            "generation": rd.generation_batch_size,
        }
    }


def load_organism(folder: Path, *, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """The trained organism's checkpoint, recorded as the model ``organism`` (not by its folder path)."""
    if not folder.exists():
        raise ModelLoadError(
            f"{folder}: the organism has not been trained yet; run `make run` (or "
            "`snakemake --profile workflow/profiles/default organism`)"
        )
    loaded = load_model(folder, device=device, dtype=dtype)
    return dataclasses.replace(loaded, model_id=ORGANISM, source_kind=ORGANISM)


def load_prompts(params: Params, spec: ModelSpec) -> list[PromptRecord]:
    """The model's prompt set: the organism's generated prompts, or the files/public sets its spec names."""
    if spec.prompts == ORGANISM:
        if not ORGANISM_PROMPTS.exists():
            raise ArtifactError(f"{ORGANISM_PROMPTS}: missing; run `mechatlas organism data` first")
        return read_jsonl(ORGANISM_PROMPTS)
    return load_prompt_source(spec.prompts, allow_hub=params.run.allow_hub, seed=params.seed)


@dataclasses.dataclass(frozen=True)
class PromptClusters:
    """Which prompts are not independent draws: prompt id -> cluster, and what a cluster is."""

    of: dict[str, str]
    unit: str  # "organism framing" | "source set"


def prompt_clusters(
    records: Sequence[PromptRecord], spec: ModelSpec, instructions: Path = ORGANISM_INSTRUCTIONS
) -> PromptClusters | None:
    """The clusters rates and verdicts resample: the organism's framings (each task is wrapped in a framing,
    and prompts sharing one fail together), or the source set of public prompts when there are two or more
    sets; ``None`` when the prompts carry no cluster (intervals are then per prompt, Wilson)."""
    if spec.prompts == ORGANISM:
        if not instructions.exists():
            raise ArtifactError(f"{instructions}: missing; run `mechatlas organism data` first")
        framing: dict[str, str] = {}
        for lineno, line in enumerate(instructions.read_text().splitlines(), start=1):
            try:
                obj = json.loads(line)
                framing[str(obj["record"]["id"])] = str(obj["framing"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ArtifactError(
                    f"{instructions}:{lineno}: corrupted; delete it and rerun `mechatlas organism data`"
                ) from None
        missing = [r.id for r in records if r.id not in framing]
        if missing:
            raise ArtifactError(
                f"{instructions}: no framing for prompt {missing[0]}; rerun `mechatlas organism data`"
            )
        return PromptClusters({r.id: framing[r.id] for r in records}, "organism framing")
    sources = {r.source for r in records}
    return PromptClusters({r.id: r.source for r in records}, "source set") if len(sources) >= 2 else None


def cap_per_domain(records: Sequence[PromptRecord], n: int | None, seed: int) -> list[PromptRecord]:
    """At most ``n`` records, spread evenly over domains (seeded shuffle within each, then round robin)."""
    if n is None or len(records) <= n:
        return list(records)
    rng = random.Random(seed)
    by_domain: dict[str, list[PromptRecord]] = defaultdict(list)
    for record in records:
        by_domain[record.domain].append(record)
    queues = []
    for domain in sorted(by_domain):
        items = list(by_domain[domain])
        rng.shuffle(items)
        queues.append(items)
    out: list[PromptRecord] = []
    while len(out) < n:
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop(0))
    return out


def json_safe(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the held-out prompt sets, which neither experiment builds a direction from -------------------------


#: Domains whose prompts are stored but never enter the class means, the candidates' validation scores or
#: the harmless test set: the organism's alarming-but-harmless controls (label harmless; see
#: ``mechatlas.organism.data.ALARMING``), held out for the harmfulness analysis of the dimensionality study.
HELD_OUT_DOMAINS = ("alarming",)
#: Sources whose harmless prompts are held out the same way: XSTest's safe prompts (Röttger et al. 2024),
#: which the over-refusal analysis reports beside harmful refusal, so they cannot also build the direction.
HELD_OUT_SOURCES = ("xstest",)


def held_out_group(label: str, domain: str, source: str) -> str | None:
    """The held-out group of a prompt, named by its domain or source; None for one that may enter the means."""
    if domain in HELD_OUT_DOMAINS:
        return domain
    if label == "harmless" and source in HELD_OUT_SOURCES:
        return source
    return None


def held_out_groups(index: pd.DataFrame, where: str = "index.parquet") -> list[str | None]:
    """The held-out group (``held_out_group``) of each row of an activation index; ``where`` names it."""
    if "source" not in index.columns:
        raise ArtifactError(
            f"{where}: no `source` column, so the held-out prompt sets cannot be told apart; "
            "rerun the refusal-direction activations stage"
        )
    return [
        held_out_group(*row) for row in zip(index["label"], index["domain"], index["source"], strict=True)
    ]


# --- the selected refusal direction, which both experiments read -----------------------------------------

DIRECTION_TENSORS = "direction.safetensors"
DIRECTION_INFO = "direction.json"


def read_direction(res_dir: Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """The selected direction (float64, unnormalised) and its metadata, refused if changed since selection."""
    remedy = "run `mechatlas refusal select` again"
    info = read_json(res_dir / DIRECTION_INFO, remedy)
    check_digests(
        res_dir, info.get("sha256") if isinstance(info, dict) else None, res_dir / DIRECTION_INFO, remedy
    )
    return read_safetensors(res_dir / DIRECTION_TENSORS, remedy)["direction"], dict(info)


def model_fingerprint(spec: ModelSpec) -> str:
    """``checkpoint_fingerprint`` of the checkpoint ``spec`` names (the trained organism's folder for it)."""
    return checkpoint_fingerprint(ORGANISM_DIR if spec.source == ORGANISM else spec.weights, spec.revision)


def check_store_model(store: ActivationStore, spec: ModelSpec) -> None:
    """Refuse an activation store computed from another checkpoint than the one ``spec`` names now."""
    recorded = store.meta.get("model", {}).get("fingerprint")
    if recorded != model_fingerprint(spec):
        raise ArtifactError(
            f"{store.folder}: these activations were computed from another checkpoint than `{spec.source}` "
            "(its fingerprint in meta.json differs); run `mechatlas refusal activations` again"
        )


def save_figure(fig: Any, path: Path, *, dpi: int = 140) -> Path:
    """Write a matplotlib figure to ``path`` (atomically) and return the path: SVG for ``.svg``, else PNG.

    SVG is written byte for byte the same for the same figure: no creation date in its metadata and a fixed
    salt for the ids matplotlib gives clip paths and glyphs (``svg.hashsalt``), text as paths so the file
    does not depend on the reader's fonts. Raster parts (heatmaps) are embedded as PNG at ``dpi``.
    """
    import matplotlib

    from mechatlas.io import atomic_path

    vector = path.suffix.lower() == ".svg"
    settings: dict[Any, Any] = {"svg.hashsalt": "mechatlas", "svg.fonttype": "path"} if vector else {}
    with matplotlib.rc_context(settings), atomic_path(path, path.suffix) as tmp:
        if vector:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="svg", metadata={"Date": None})
        else:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    return path


# --- verdicts under several judges ------------------------------------------------------------------------


def judge_panel_record(
    verdicts_by_judge: Mapping[str, Sequence[dict[str, str]]], verdict_judge: str
) -> tuple[list[dict[str, str]], dict[str, dict[str, str]], list[str]]:
    """Every claim's verdict under each judge, as both experiments' records carry them.

    ``verdicts_by_judge`` maps each judge to the ``{paper, claim, verdict, reason}`` entries derived from its
    measurements; a judge may leave out a claim it did not measure. Returns the ``replicates`` (those of
    ``verdict_judge``, each reason ending with the other judges' verdicts and a flag where they differ),
    the panel (judge -> claim -> verdict) and the claims whose verdict flips between judges.
    """
    panel = {
        judge: {v["claim"]: v["verdict"] for v in entries} for judge, entries in verdicts_by_judge.items()
    }
    replicates = [dict(v) for v in verdicts_by_judge[verdict_judge]]
    flips = [
        v["claim"]
        for v in replicates
        if len({panel[j][v["claim"]] for j in panel if v["claim"] in panel[j]}) > 1
    ]
    for entry in replicates:
        claim = entry["claim"]
        others = ", ".join(
            f"{j}: {panel[j][claim]}" for j in panel if j != verdict_judge and claim in panel[j]
        )
        if others:
            flag = "; the verdict FLIPS between judges" if claim in flips else ""
            entry["reason"] += f" [judge {verdict_judge}; other judges: {others}{flag}]"
    return replicates, panel, flips
