"""Figures by layer: refusal dimensionality per estimator, the spectra, INLP accuracy, the causal sweep.

Each reads already-computed results (``metrics.json``'s per-layer table, ``geometry.json``,
``causal.json``) and draws one figure (SVG): ``dimensionality_by_layer``, ``spectra``, ``inlp_accuracy``,
``causal_sweep``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mechatlas.experiments.dimensionality.plotting import errorbar, save

ESTIMATOR_STYLE = {
    "spectral (parallel analysis)": ("#1f77b4", "o", "spectral: parallel analysis"),
    "spectral participation ratio": ("#17becf", "s", "spectral: participation ratio"),
    "probe (INLP)": ("#2ca02c", "^", "probe: INLP"),
    "causal (top-k spectral ablated)": ("#d62728", "D", "causal: top-k spectral ablated"),
    "causal control (k random directions)": ("#7f7f7f", "x", "control: k random directions"),
}


def dimensionality_by_layer(metrics: dict[str, Any], path: Path, *, title: str) -> Path:
    """k per layer, one line per estimator, with 95% CIs; the random-direction control; censored points."""
    rows = [r for r in metrics["dimensionality"]["table"] if r.get("selected_position")]
    layers = sorted({r["layer"] for r in rows})
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    max_k = metrics["settings"]["max_k"]
    for offset, (estimator, (colour, marker, label)) in enumerate(ESTIMATOR_STYLE.items()):
        chosen = {r["layer"]: r for r in rows if r["estimator"] == estimator}
        xs, ys = [], []
        for layer in layers:
            r = chosen.get(layer)
            if r is None:
                continue
            x = layer + (offset - 2) * 0.06
            if r["k"] is None:  # censored: never reached the threshold within the ks tried
                top = r["ci_low"] or max_k
                censored = not any(
                    c.get_label() == f"{label} (not reached: > k tried)" for c in ax.collections
                )
                ax.scatter(
                    [x],
                    [top],
                    marker="^",
                    facecolors="none",
                    edgecolors=colour,
                    s=60,
                    label=f"{label} (not reached: > k tried)" if censored else None,
                )
                ax.annotate(
                    f">{int(top) - 1}",
                    (x, top),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=colour,
                )
                continue
            xs.append(x)
            ys.append(r["k"])
            errorbar(
                ax, x, r["k"], [r.get("ci_low"), r.get("ci_high")], color=colour, marker=marker, ls="none"
            )
        if xs:
            ax.plot(xs, ys, color=colour, marker=marker, label=label, lw=1.2)
    ax.set_xticks(layers, [f"L{layer}" for layer in layers])
    ax.set_xlabel("layer (residual stream entering the block, selected post-instruction position)")
    ax.set_ylabel("dimensions (k)")
    n = metrics["dimensionality"]["n"]
    ax.set_title(
        f"{title}: refusal dimensionality by layer (n = {n['harmful']} harmful, {n['harmless']} harmless; 95% CIs)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, path)


def spectra(geo: dict[str, Any], path: Path, *, title: str) -> Path:
    """Eigenvalues of the whitened excess second moment per layer against the permutation null band."""
    rows = [
        r
        for r in geo["dimensionality"]
        if r["estimator"] == "spectral" and r["selected"] and not r.get("degenerate")
    ]
    fig = Figure(figsize=(4 * max(len(rows), 1), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(rows), 1)))
    for ax, r in zip(axes, rows, strict=False):
        values = np.array(r["top_eigenvalues"])
        ranks = np.arange(1, len(values) + 1)
        q = r["null_max_quantiles"]
        ax.axhspan(q["0.05"], q["0.95"], color="#cccccc", alpha=0.6, label="null: top eigenvalue, 5-95%")
        ax.axhline(r["null_threshold"], color="#7f7f7f", lw=1, ls="--")
        above = values > r["null_threshold"]
        ax.plot(ranks[above], values[above], "o", color="#1f77b4", ms=3, label=f"above null: k = {r['k']}")
        ax.plot(ranks[~above], values[~above], "o", color="#aaaaaa", ms=3)
        ax.set_title(
            f"L{r['layer']}: k = {r['k']} [{r['ci95'][0]:.0f}, {r['ci95'][1]:.0f}], PR = {r['participation_ratio']:.1f}",
            fontsize=9,
        )
        ax.set_xlabel("rank")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("excess eigenvalue (whitened)")
    fig.suptitle(
        f"{title}: harmful-vs-harmless spectrum ({rows[0]['n_permutations'] if rows else 0} label permutations)",
        fontsize=10,
    )
    return save(fig, path)


def inlp_accuracy(geo: dict[str, Any], path: Path, *, title: str) -> Path:
    """Held-out balanced accuracy of each INLP round, per layer, with the chance threshold."""
    rows = [
        r
        for r in geo["dimensionality"]
        if r["estimator"] == "probe" and r["selected"] and not r.get("degenerate") and not r.get("declined")
    ]
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for r in rows:
        curve = r["accuracy_curve"]
        ax.plot(
            range(len(curve)),
            curve,
            marker="o",
            ms=3,
            label=f"L{r['layer']}: k = {r['k']} [{r['ci95'][0]:.0f}, {r['ci95'][1]:.0f}]",
        )
    if rows:
        ax.axhline(rows[0]["chance_threshold"], color="#7f7f7f", ls="--", lw=1, label="counts as chance")
        ax.axhline(
            rows[0]["estimation_floor"], color="#bbbbbb", ls=":", lw=1, label="estimation floor (approx.)"
        )
    ax.axhline(0.5, color="black", lw=0.6)
    ax.set_xlabel("directions removed")
    ax.set_ylabel("held-out balanced accuracy")
    ax.set_title(
        f"{title}: INLP (n = {rows[0]['n_harmful'] if rows else 0} harmful, {rows[0]['n_harmless'] if rows else 0} harmless)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, path)


def causal_sweep(causal: dict[str, Any], threshold: float, path: Path, *, title: str) -> Path:
    """Harmful refusal after ablating the top-k subspace, per source layer, with random-direction controls."""
    sweeps = {layer: s for layer, s in causal["sweeps"].items() if not s.get("degenerate")}
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for i, (layer, sweep) in enumerate(sorted(sweeps.items(), key=lambda kv: int(kv[0]))):
        colour = colours[i % len(colours)]
        for name, style, label in (
            ("spectral", "-o", "spectral"),
            ("probe", "--^", "INLP"),
            ("random", "x", "random"),
        ):
            if name not in sweep:
                continue
            curve = sweep[name]["curve"]
            ks = sorted(int(k) for k in curve)
            values = [curve[str(k)]["value"] for k in ks]
            lows = [curve[str(k)]["ci95"][0] for k in ks]
            highs = [curve[str(k)]["ci95"][1] for k in ks]
            ax.plot(
                ks,
                values,
                style,
                color=colour if name != "random" else "#7f7f7f",
                ms=4,
                label=f"L{layer} {label}" + (f" (k = {sweep[name]['k']})" if sweep[name]["crossed"] else ""),
            )
            if name != "random":
                ax.fill_between(ks, lows, highs, color=colour, alpha=0.12)
    ax.axhline(threshold, color="black", ls="--", lw=0.8, label=f"threshold {threshold}")
    ax.set_xscale("symlog", linthresh=4)
    ax.set_xlabel("k (directions ablated at every layer and position)")
    ax.set_ylabel("refusal rate, harmful test prompts")
    n = causal["n"]["harmful"]
    ax.set_title(
        f"{title}: causal dimension (n = {n} harmful prompts, Wilson 95% CIs; judge: {causal['judge']})",
        fontsize=9,
    )
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return save(fig, path)
