"""Measuring a planted organism's planted property before it is used as ground truth.

Every condition is directional ablation at every layer (``mechatlas.interp.interventions.ablation_hooks``,
the estimators' own intervention) on the held-out test prompts; refusal is the first-token judge (the
greedy first reply token is a refusal token, as in the dimensionality experiment's causal stage). Each
rate has a Wilson interval over prompts and a cluster-bootstrap interval over framings (prompts that
share a framing are not independent). The conditions:

- the planted subspace, each of its non-empty proper subsets, and (for domain groups) each group's
  direction, with rates per domain and per group;
- random subspaces of the planted size and of size 1 (the controls);
- the difference-in-means direction at every layer input (last post-instruction position), and for a
  one-direction organism its part orthogonal to the planted direction;
- the constrained bypass search (``mechatlas.interp.intervention_training.bypass_search``): directions
  optimised to remove refusal, kept orthogonal to the decision's read-out, for every size below the
  planted k (which must fail) and at k (for comparison); and one unconstrained direction, reported apart,
  since an unconstrained search removes the read-out itself.

``planted_checks`` turns the measurements into the checks the planted kind implies; the property holds
when every check does. For one direction, the raw difference-in-means direction is reported but not
checked (it largely is the planted direction); its part orthogonal to the planted one is checked. A check on "removed" needs the upper ends of both intervals below
``removed_below``; on "kept", the lower ends above ``kept_above``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mechatlas.config import OrganismSettings, PlantKind, PlantVerification
from mechatlas.interp.directions import orthonormal_basis, random_subspace
from mechatlas.interp.interventions import ablation_hooks
from mechatlas.organism.data import ALARMING, Instruction
from mechatlas.stats import cluster_bootstrap_rate, rate

REMOVED, KEPT = "removed", "kept"


def rates(flags: np.ndarray, records: Sequence[Instruction]) -> dict[str, Any]:
    """A rate with its Wilson and framing-cluster intervals, and per-domain rates."""
    values = [bool(f) for f in flags]
    domains = sorted({i.record.domain for i in records})
    return {
        "all": rate(values),
        "all_by_framing": cluster_bootstrap_rate(values, [i.framing for i in records]),
        "per_domain": {
            d: rate([f for f, i in zip(values, records, strict=True) if i.record.domain == d])
            for d in domains
        },
    }


def group_rates(
    flags: np.ndarray, records: Sequence[Instruction], groups: Sequence[Sequence[str]]
) -> list[Any]:
    """Rates per domain group (Wilson and framing-cluster intervals), in group order."""
    out = []
    for group in groups:
        picked = [(bool(f), i) for f, i in zip(flags, records, strict=True) if i.record.domain in group]
        out.append(
            {
                "all": rate([f for f, _ in picked]),
                "all_by_framing": cluster_bootstrap_rate(
                    [f for f, _ in picked], [i.framing for _, i in picked]
                ),
            }
        )
    return out


def judge(measured: Mapping[str, Any], expect: str, settings: PlantVerification) -> bool:
    """Whether a measured rate (``rate`` and cluster-bootstrap intervals) is removed or kept, as expected."""
    intervals = [measured["all"]["ci95"]]
    clustered = measured.get("all_by_framing")
    if clustered is not None and not any(np.isnan(x) for x in clustered["ci95"]):
        intervals.append(clustered["ci95"])
    if expect == REMOVED:
        return all(ci[1] < settings.removed_below for ci in intervals)
    return all(ci[0] > settings.kept_above for ci in intervals)


def _check(
    name: str, measured: Mapping[str, Any], expect: str, settings: PlantVerification
) -> dict[str, Any]:
    return {
        "condition": name,
        "expect": expect,
        "value": measured["all"]["value"],
        "ci95": measured["all"]["ci95"],
        "ci95_framings": None
        if measured.get("all_by_framing") is None
        else measured["all_by_framing"]["ci95"],
        "n": measured["all"]["n"],
        "holds": judge(measured, expect, settings),
    }


def planted_checks(
    kind: PlantKind, k: int, conditions: Mapping[str, Mapping[str, Any]], settings: PlantVerification
) -> list[dict[str, Any]]:
    """The checks ``kind`` implies, on the harmful test prompts under each measured condition.

    ``conditions`` maps a condition name to its measurement: ``harmful`` (``rates``), for domain groups
    ``groups`` (``group_rates``), and ``harmless``. Names: ``none``, ``planted``, ``planted[i,...]``,
    ``random k=…``, ``dim …``, ``bypass k=… (constrained)``, ``bypass k=1 (constrained, ⊥ planted)``.
    """
    checks: list[dict[str, Any]] = []
    for name, measured in conditions.items():
        harmful = measured["harmful"]
        if name == "none":
            checks.append(_check(name, harmful, KEPT, settings))
            checks.append(
                {**_check(f"{name}: harmless", measured["harmless"], REMOVED, settings), "expect": "low"}
            )
        elif name == "planted":
            checks.append(_check(name, harmful, REMOVED, settings))
            for domain, value in harmful["per_domain"].items():
                one = {"all": value, "all_by_framing": None}
                checks.append(_check(f"{name}: {domain}", one, REMOVED, settings))
        elif name.startswith("planted["):
            if kind == PlantKind.domain_groups:
                (g,) = (int(x) for x in name[len("planted[") : -1].split(","))
                for h, measured_group in enumerate(measured["groups"]):
                    expect = REMOVED if h == g else KEPT
                    checks.append(_check(f"{name}: group {h}", measured_group, expect, settings))
            elif kind == PlantKind.redundant:
                checks.append(_check(name, harmful, KEPT, settings))
        elif name.startswith("random") or name.endswith("⊥ planted"):
            checks.append(_check(name, harmful, KEPT, settings))
        elif name.startswith("dim") and kind != PlantKind.one_direction:
            # For one direction, the raw difference in means is largely the planted direction itself
            # (reported, not checked); its part orthogonal to it is the other direction that must fail.
            checks.append(_check(name, harmful, KEPT, settings))
        elif name.startswith("bypass") and "unconstrained" not in name:
            size = int(name.split("k=")[1].split(" ")[0])
            if size < k or "⊥ planted" in name:
                if kind == PlantKind.domain_groups and size == 1:
                    # one direction may take one group's refusal; every other group must keep its own
                    lowered = [
                        h
                        for h, measured_group in enumerate(measured["groups"])
                        if not judge(measured_group, KEPT, settings)
                    ]
                    checks.append(
                        {
                            **_check(name, harmful, KEPT, settings),
                            "expect": "all groups but at most one kept",
                            "holds": len(lowered) <= 1,
                        }
                    )
                elif kind != PlantKind.domain_groups:
                    checks.append(_check(name, harmful, KEPT, settings))
    return checks


def _first_token_flags(
    model: Any, texts: Sequence[str], hooks: Sequence[Any], refusal_ids: Sequence[int], batch: int
) -> np.ndarray:
    from mechatlas.interp.scores import last_logits

    logits = last_logits(model, list(texts), list(hooks), batch_size=batch)
    return np.isin(logits.argmax(dim=-1).numpy(), list(refusal_ids))


def verify_planted(
    model_dir: Path,
    instructions: Sequence[Instruction],
    settings: OrganismSettings,
    name: str,
    *,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Measure every condition on the planted organism in ``model_dir``; return the record's metrics."""
    import json

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from mechatlas.interp.intervention_training import bypass_search, readout_directions
    from mechatlas.interp.models import load_model
    from mechatlas.organism.planting import (
        PLANTED_FILE,
        PLANTING_FILE,
        chat_batches,
        decision_ids,
        difference_in_means_directions,
        subsets,
    )

    spec, check = settings.planted[name], settings.verification
    torch.set_num_threads(settings.training.threads)
    planted = load_file(str(model_dir / PLANTED_FILE))["directions"].double()
    model = load_model(model_dir)
    hf = AutoModelForCausalLM.from_pretrained(
        str(model_dir), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
    )
    hf.eval()
    tokenizer = model.tokenizer
    refusal_ids, comply_id = decision_ids(tokenizer, settings)
    test = [i for i in instructions if i.record.split == "test"]
    harmful = [i for i in test if i.record.label == "harmful"]
    harmless = [i for i in test if i.record.label == "harmless" and i.record.domain != ALARMING]
    train = [i for i in instructions if i.record.split == "train"]
    rng = np.random.default_rng(check.seed)

    def pick(pool: list[Instruction], n: int) -> list[str]:
        return [
            pool[j].record.text for j in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
        ]

    train_harmful = [i for i in train if i.record.label == "harmful"]
    train_harmless = [i for i in train if i.record.label == "harmless"]
    n_layers = model.n_layers

    def measure(directions: Tensor | None) -> dict[str, Any]:
        hooks = [] if directions is None else ablation_hooks(n_layers, directions)
        out: dict[str, Any] = {}
        flags = _first_token_flags(model, [i.record.text for i in harmful], hooks, refusal_ids, batch_size)
        out["harmful"] = rates(flags, harmful)
        if spec.kind == PlantKind.domain_groups:
            out["groups"] = group_rates(flags, harmful, spec.groups or [])
        flags = _first_token_flags(model, [i.record.text for i in harmless], hooks, refusal_ids, batch_size)
        out["harmless"] = rates(flags, harmless)
        if directions is not None:
            basis = orthonormal_basis(directions)
            out["dimension"] = len(basis)
            out["overlap_with_planted"] = float((basis @ planted.T).norm() ** 2 / len(basis))
        return out

    conditions: dict[str, Any] = {"none": measure(None), "planted": measure(planted)}
    for subset in subsets(spec.k) if spec.kind != PlantKind.domain_groups else [(g,) for g in range(spec.k)]:
        conditions[f"planted[{','.join(map(str, subset))}]"] = measure(planted[list(subset)])
    d_model = planted.shape[1]
    for size in sorted({spec.k, 1}):
        for r in range(check.random_subspaces):
            conditions[f"random k={size} #{r}"] = measure(
                random_subspace(size, d_model, check.seed + 1000 * size + r)
            )
    dims = difference_in_means_directions(
        hf,
        tokenizer,
        pick(train_harmful, check.dim_prompts),
        pick(train_harmless, check.dim_prompts),
        positions=1,
    ).double()
    for layer, direction in enumerate(dims, start=1):
        conditions[f"dim layer {layer}"] = measure(direction)
        if spec.kind == PlantKind.one_direction:
            orth = direction - (direction @ planted.T) @ planted
            conditions[f"dim layer {layer} ⊥ planted"] = measure(orth)
    protected = readout_directions(hf, refusal_ids, comply_id)
    search = chat_batches(tokenizer, pick(train_harmful, check.search_prompts), 32)
    searches: dict[str, Any] = {}
    tries: list[tuple[str, int, Tensor | None]] = [
        (f"bypass k={size} (constrained)", size, protected)
        # domain groups: one direction must not remove more than one group's refusal; k for comparison
        for size in ([1, spec.k] if spec.kind == PlantKind.domain_groups else range(1, spec.k + 1))
    ]
    if spec.kind == PlantKind.one_direction:
        tries.append(
            ("bypass k=1 (constrained, ⊥ planted)", 1, orthonormal_basis(torch.cat([protected, planted])))
        )
    tries.append(("bypass k=1 (unconstrained)", 1, None))
    for label, size, constraint in tries:
        found, losses = bypass_search(
            hf,
            search,
            refusal_ids,
            comply_id,
            size,
            protected=None if constraint is None else constraint.float(),
            steps=check.search_steps,
            lr=check.search_lr,
            seed=check.seed,
        )
        conditions[label] = measure(found.double())
        readout_overlap = float((found.double() @ protected.T).norm() ** 2 / size)
        searches[label] = {"final_loss": losses[-1], "overlap_with_readout": readout_overlap}
    checks = planted_checks(spec.kind, spec.k, conditions, check)
    planting = json.loads((model_dir / PLANTING_FILE).read_text())
    return {
        "name": name,
        "kind": spec.kind.value,
        "planted_k": spec.k,
        "groups": spec.groups,
        "judge": "first token: the greedy first reply token is one of organism.refusal_tokens",
        "intervention": "directional ablation at every layer (resid_pre, attn_out, mlp_out), all positions",
        "conditions": conditions,
        "searches": searches,
        "checks": checks,
        "planted_property_holds": all(c["holds"] for c in checks),
        "failed_checks": [c["condition"] for c in checks if not c["holds"]],
        "planting": {k: v for k, v in planting.items() if k != "loss_curve"},
    }
