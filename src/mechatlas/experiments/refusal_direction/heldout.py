"""Capability cost on held-out text the model did not write: cross-entropy under every condition.

The paper's capability check scores the model on text it did not generate (Arditi et al. 2024 report
cross-entropy on Alpaca and the Pile, §4.3). ``read_heldout_text`` reads a local file (a JSON array or
JSONL; Alpaca-style rows with ``instruction``/``input``/``output`` are scored as prompt and reference
reply through the chat template, rows with ``text`` as raw documents); ``heldout_capability`` gives the
mean cross-entropy per condition and its rise over the baseline, each with a bootstrap CI over texts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechatlas.errors import ArtifactError
from mechatlas.interp.evaluation import Condition, capability_cost, text_cross_entropy
from mechatlas.interp.models import LoadedModel
from mechatlas.stats import bootstrap_ci


def read_heldout_text(path: Path) -> list[tuple[str | None, str]]:
    """(prompt or None, text) pairs from a JSON array or JSONL file; a bad row is refused by line."""
    if not path.exists():
        raise ArtifactError(
            f"{path}: missing; set `refusal_direction.capability_text` to a local file, or null"
        )
    raw = path.read_text(encoding="utf-8")
    try:
        rows = (
            json.loads(raw)
            if raw.lstrip().startswith("[")
            else [json.loads(line) for line in raw.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    pairs: list[tuple[str | None, str]] = []
    for number, row in enumerate(rows, start=1):
        if (
            isinstance(row, dict)
            and isinstance(row.get("output"), str)
            and isinstance(row.get("instruction"), str)
        ):
            prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
            if row["output"].strip():
                pairs.append((prompt, row["output"]))
        elif isinstance(row, dict) and isinstance(row.get("text"), str):
            pairs.append((None, row["text"]))
        else:
            raise ArtifactError(
                f"{path}: row {number} has neither `instruction` and `output` nor `text`; fix or remove it"
            )
    return pairs


def heldout_capability(
    model: LoadedModel,
    pairs: Sequence[tuple[str | None, str]],
    conditions: Sequence[Condition],
    *,
    batch_size: int,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Mean cross-entropy per condition and its rise over the baseline (paired, per text), with CIs."""
    instructed = [(p, t) for p, t in pairs if p is not None]
    raw = [t for p, t in pairs if p is None]
    frames = []
    if instructed:
        cost = capability_cost(
            model, [p for p, _ in instructed], [t for _, t in instructed], conditions, batch_size=batch_size
        )
        frames.append(
            cost.rename(columns={"prompt_index": "text_index"})[["text_index", "condition", "ce"]].assign(
                kind="reply"
            )
        )
    if raw:
        cost = text_cross_entropy(model, raw, conditions, batch_size=batch_size)
        frames.append(
            cost[["text_index", "condition", "ce"]].assign(
                kind="text", text_index=cost["text_index"] + len(instructed)
            )
        )
    table = pd.concat(frames, ignore_index=True)
    wide = table.pivot_table(index="text_index", columns="condition", values="ce")
    out: dict[str, Any] = {"n_texts": len(wide), "n_reply_pairs": len(instructed), "n_raw_texts": len(raw)}
    for condition in wide.columns:
        values = wide[condition].dropna().to_numpy()
        rise = (wide[condition] - wide["baseline"]).dropna().to_numpy()
        out[str(condition)] = {
            "ce": float(np.mean(values)),
            "ce_ci95": list(bootstrap_ci(values, n_resamples=resamples, seed=seed)),
            "rise_over_baseline": float(np.mean(rise)),
            "rise_ci95": list(bootstrap_ci(rise, n_resamples=resamples, seed=seed)),
            "n": len(values),
        }
    return out
