"""Over-refusal beside harmful refusal: benign prompts that look alarming, under each intervention.

A refusal direction that only "finds" refusal should leave benign prompts answered at baseline and make
them refused when added. Two sets of benign-but-alarming prompts are reported next to the harmful test
prompts, under the unmodified model, the direction ablated and the direction added:

- ``alarming``: the organism's alarming-but-harmless controls (label harmless, domain ``alarming``);
- ``xstest``: XSTest's safe prompts (Röttger et al. 2024; source ``xstest``, label harmless), where the
  model's prompt set includes XSTest.

Both are held out (``mechatlas.experiments.common.held_out_group``) of the class means and the candidates' validation
prompts, so they never build the direction, and of the harmless test set, so that the harmless rates
stay those of ordinary requests.

Each group is capped per domain at ``n_test`` (seeded), and each rate carries its n and a 95% interval
over the same unit as the other rates (clusters where the prompts come in clusters, Wilson otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mechatlas.experiments.common import held_out_group
from mechatlas.prompts import PromptRecord
from mechatlas.stats import rate_over_unit

#: The interventions over-refusal is reported under (the standard conditions' names).
CONDITIONS = ("baseline", "ablation", "actadd")
GROUPS = ("alarming", "xstest")


def over_refusal_group(record: PromptRecord) -> str | None:
    """Which over-refusal group a record belongs to, if any (benign records only)."""
    if record.label != "harmless":
        return None
    return held_out_group(record.label, record.domain, record.source)


def over_refusal_prompts(
    records: Sequence[PromptRecord], n_per_domain: int, seed: int
) -> dict[str, list[PromptRecord]]:
    """The test-split prompts of each over-refusal group present in ``records``, capped per domain."""
    from mechatlas.experiments.common import cap_per_domain

    groups: dict[str, list[PromptRecord]] = {}
    for record in records:
        group = over_refusal_group(record) if record.split == "test" else None
        if group is not None:
            groups.setdefault(group, []).append(record)
    return {g: cap_per_domain(groups[g], n_per_domain, seed) for g in GROUPS if g in groups}


def over_refusal_summary(
    rows: pd.DataFrame,
    harmful_rates: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    judges: Sequence[str],
    resamples: int,
    seed: int,
    clusters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Per judge and condition: harmful refused (from ``harmful_rates``, the record's refusal rates) beside
    each over-refusal group's refused rate. ``rows``: one per (condition, prompt), with ``group``, ``id``
    and the ``refused_<judge>`` columns."""
    out: dict[str, Any] = {}
    for judge in judges:
        by_condition: dict[str, Any] = {}
        for condition in CONDITIONS:
            cell: dict[str, Any] = {}
            harmful = harmful_rates.get(judge, {}).get(condition, {}).get("harmful")
            if harmful is not None:
                cell["harmful"] = harmful
            for group in GROUPS:
                chosen = rows[(rows["condition"] == condition) & (rows["group"] == group)]
                if chosen.empty:
                    continue
                units = None if clusters is None else [clusters.get(i, i) for i in chosen["id"]]
                flags = chosen[f"refused_{judge}"].astype(bool).tolist()
                cell[group] = rate_over_unit(flags, units, n_resamples=resamples, seed=seed)
            by_condition[condition] = cell
        out[judge] = by_condition
    return out


def evaluate_over_refusal(
    model: Any,
    groups: Mapping[str, Sequence[PromptRecord]],
    conditions: Sequence[Any],
    spec: Any,
    harmful_rates: Mapping[str, Any],
    *,
    judges: Sequence[Any],
    judge_names: Sequence[str],
    refusal_ids: Sequence[int],
    settings: Any,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate replies to each group's prompts under ``CONDITIONS`` (as harmless prompts: ablation
    ablates, addition adds) and summarise them beside harmful refusal; ``{}`` when no group is present."""
    from mechatlas.experiments.common import prompt_clusters
    from mechatlas.interp.evaluation import EvalPrompt, evaluate_conditions

    members = [(group, r) for group, records in groups.items() for r in records]
    if not members:
        return {}
    prompts = [EvalPrompt(r.id, r.text, "harmless", r.domain) for _, r in members]
    rows = evaluate_conditions(
        model,
        prompts,
        [c for c in conditions if c.name in CONDITIONS],
        refusal_ids=refusal_ids,
        judges=list(judges),
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.generation_batch_size,
        progress=progress,
    )
    rows["group"] = rows["id"].map({r.id: group for group, r in members})
    clusters = prompt_clusters([r for _, r in members], spec)
    return {
        "rates": over_refusal_summary(
            rows,
            harmful_rates,
            judges=judge_names,
            resamples=settings.bootstrap_resamples,
            seed=settings.seed,
            clusters=clusters.of if clusters is not None else None,
        ),
        "n_prompts": {group: len(records) for group, records in groups.items()},
        "interval_unit": f"{clusters.unit} (cluster bootstrap)"
        if clusters is not None
        else "prompt (Wilson)",
    }
