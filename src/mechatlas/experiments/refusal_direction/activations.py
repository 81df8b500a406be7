"""The prompt groups of the refusal-direction experiment and what the activations stage records of them.

Arditi et al. 2024 (arXiv 2406.11717, Section 2) take difference-in-means candidates from the
residual stream at the post-instruction positions of harmful and harmless train prompts, keeping
only the harmful prompts the model refuses and the harmless ones it does not (Appendix A). This
module holds those choices: which prompts form each group, which are kept, one ``index.parquet``
row per prompt, and the ``meta.json`` that describes the stored arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from mechatlas.errors import ArtifactError
from mechatlas.experiments.common import (
    HELD_OUT_DOMAINS,
    HELD_OUT_SOURCES,
    cap_per_domain,
    held_out_group,
    held_out_groups,
)
from mechatlas.prompts import PromptRecord


def held_out_control(records: Sequence[PromptRecord]) -> torch.Tensor:
    """Which records are held out (``held_out_group``), as a boolean mask."""
    return torch.tensor(
        [held_out_group(r.label, r.domain, r.source) is not None for r in records], dtype=torch.bool
    )


def held_out_record(index: pd.DataFrame) -> dict[str, Any]:
    """What ``meta.json`` and ``direction.json`` say was held out: the rule and, per group, how many prompts."""
    n: dict[str, dict[str, int]] = {}
    for group, label, split in zip(held_out_groups(index), index["label"], index["split"], strict=True):
        if group is not None:
            n.setdefault(group, {}).setdefault(f"{label}_{split}", 0)
            n[group][f"{label}_{split}"] += 1
    return {
        "domains": list(HELD_OUT_DOMAINS),
        "harmless_sources": list(HELD_OUT_SOURCES),
        "rule": "stored, but never in the class means or the candidates' validation prompts: every prompt of "
        "a held-out domain and every harmless prompt of a held-out source",
        "n": {group: dict(sorted(counts.items())) for group, counts in sorted(n.items())},
    }


#: The (label, split) groups whose activations are stored, in the order they are written.
GROUPS = (("harmful", "train"), ("harmless", "train"), ("harmful", "val"), ("harmless", "val"))


def prompt_group(records: Sequence[PromptRecord], label: str, split: str, source: str) -> list[PromptRecord]:
    """The prompts with ``label`` in ``split``; raises ``ArtifactError`` naming ``source`` if there are none."""
    group = [r for r in records if r.label == label and r.split == split]
    if not group:
        raise ArtifactError(
            f"the prompt set `{source}` has no {label} prompts in the {split} split; the refusal-direction "
            "experiment needs harmful and harmless prompts in train, val and test"
        )
    return group


def train_prompts(group: Sequence[PromptRecord], n_train: int | None, seed: int) -> list[PromptRecord]:
    """The train prompts of one label that are stored, capped per domain (``cap_per_domain``).

    The prompts of a held-out source are capped on their own and follow the others, so that a set the
    means never see (XSTest's ten safe types) takes no ordinary prompt's place in the round robin over
    domains. The held-out domains stay in it: they are part of the organism's own prompt set.
    """
    is_foreign = [held_out_group(r.label, r.domain, r.source) in HELD_OUT_SOURCES for r in group]
    foreign = [r for r, out in zip(group, is_foreign, strict=True) if out]
    ordinary = [r for r, out in zip(group, is_foreign, strict=True) if not out]
    return cap_per_domain(ordinary, n_train, seed) + cap_per_domain(foreign, n_train, seed)


def kept_by_refusal(
    scores: torch.Tensor,
    label: str,
    *,
    filter_by_refusal_score: bool,
    controls: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which prompts of a batch enter the class means: refused harmful and unrefused harmless ones, never
    a held-out prompt (``controls``, a mask from ``held_out_control``)."""
    kept = scores > 0 if label == "harmful" else scores < 0
    kept = torch.ones_like(kept) if not filter_by_refusal_score else kept
    return kept if controls is None else kept & ~controls


def index_rows(
    group: Sequence[PromptRecord],
    label: str,
    split: str,
    start: int,
    scores: torch.Tensor,
    kept: torch.Tensor,
) -> list[dict[str, Any]]:
    """One ``index.parquet`` row per prompt of a batch that starts at row ``start`` of its array."""
    return [
        {
            "id": record.id,
            "label": label,
            "split": split,
            "domain": record.domain,
            "source": record.source,
            "text": record.text,
            "row": start + offset,
            "refusal_score": float(score),
            "kept": bool(keep),
        }
        for offset, (record, score, keep) in enumerate(zip(group[start:], scores, kept, strict=False))
    ]


def activation_meta(
    model: Any,
    post: Any,
    index: pd.DataFrame,
    *,
    name: str,
    hooks: list[str],
    fallback: list[str],
    filter_by_refusal_score: bool,
    refusal_tokens: Any,
    refusal_ids: Any,
) -> dict[str, Any]:
    """The ``meta.json`` of the activations folder: model, array layout, positions, counts and filters."""
    counts = index.groupby(["label", "split"]).agg(n=("kept", "size"), kept=("kept", "sum"))
    return {
        "model": {"name": name, "id": model.model_id, "revision": model.revision},
        "layout": "(prompt, position, layer, d_model), float32; rows follow index.parquet `row` per file",
        "hooks": hooks,
        "layers": list(range(model.n_layers)),
        "positions": list(post.positions),
        "position_tokens": list(post.tokens),
        "d_model": model.d_model,
        "model_dtype": str(model.dtype).removeprefix("torch."),
        "files": {f"{label}_{split}": f"{label}_{split}.npy" for label, split in GROUPS},
        "counts": {
            f"{lab}_{spl}": {"n": int(row.n), "kept": int(row.kept)} for (lab, spl), row in counts.iterrows()
        },
        "means": "train prompts with kept=true, accumulated in float64; held-out prompts (`held_out`) "
        "never enter them",
        "held_out": held_out_record(index),
        "filter_by_refusal_score": filter_by_refusal_score,
        "filter_fallback": fallback,
        "refusal_tokens": {"strings": refusal_tokens, "ids": refusal_ids},
    }
