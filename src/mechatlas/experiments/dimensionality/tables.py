"""The tables of the metrics stage: ``per_layer.csv`` and ``domains.csv``.

``per_layer_table`` flattens ``geometry.json``'s spectral and INLP estimates and ``causal.json``'s causal
dimensions (top-k spectral, random control, top-k INLP) into one row per layer, position and estimator;
``domain_table`` (``domains.csv``) gives one row per harm domain at the selected layer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


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
        elif r.get("declined"):
            rows.append(base | n | {"estimator": "probe (INLP): declined", "k": None, "note": r["declined"]})
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


def domain_table(geo: dict[str, Any], causal: dict[str, Any]) -> pd.DataFrame:
    """One row per harm domain at the selected layer: its dimensionality, cosines, refusal."""
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
                "cosine_with_pooled": dom["cosine_with_pooled"][d],
                "lodo_cosine_with_own": dom["lodo_cosine_with_own"][d],
                **{f"refusal_{k}": v["value"] for k, v in lodo.items()},
                **{f"refusal_{k}_n": v["n"] for k, v in lodo.items()},
            }
        )
    return pd.DataFrame(domain_rows)
