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
from mechatlas.prompts import PromptRecord

#: Domains whose prompts are stored but never enter the class means, the candidates' validation scores or
#: the harmless test set: the organism's alarming-but-harmless controls (label harmless; see
#: ``mechatlas.organism.data.ALARMING``), held out for the harmfulness analysis of the dimensionality study.
HELD_OUT_DOMAINS = ("alarming",)


def held_out_control(records: Sequence[PromptRecord]) -> torch.Tensor:
    """Which records are held-out controls (``HELD_OUT_DOMAINS``), as a boolean mask."""
    return torch.tensor([r.domain in HELD_OUT_DOMAINS for r in records], dtype=torch.bool)


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


def kept_by_refusal(
    scores: torch.Tensor,
    label: str,
    *,
    filter_by_refusal_score: bool,
    controls: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which prompts of a batch enter the class means: refused harmful and unrefused harmless ones, never
    a held-out control (``controls``, a mask from ``held_out_control``)."""
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
        "means": "train prompts with kept=true, accumulated in float64; held-out control domains "
        f"{list(HELD_OUT_DOMAINS)} never enter them",
        "filter_by_refusal_score": filter_by_refusal_score,
        "filter_fallback": fallback,
        "refusal_tokens": {"strings": refusal_tokens, "ids": refusal_ids},
    }
