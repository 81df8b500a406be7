"""The smallest-bypass figure: harmful refusal as the optimised subspace grows, without and with the
read-out constraint, against a random subspace of the same size (``optimised.json``'s ``bypass``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mechatlas.experiments.dimensionality.plotting import bar_errors, save, unavailable

STYLE = {
    "unconstrained": ("#d62728", "o", "optimised, ablated everywhere"),
    "constrained": ("#1f77b4", "s", "optimised, read-out constrained"),
}


def optimised_bypass(metrics: dict[str, Any], threshold: float, path: Path, *, title: str) -> Path:
    """Refusal against m for each search, with 95% intervals, the random control and the threshold."""
    part = (metrics.get("optimised") or {}).get("bypass")
    if not part or not part.get("constrained"):
        return unavailable(
            path, title, "no optimised-directions record (run the dimensionality optimised stage)"
        )
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    for kind, (colour, marker, label) in STYLE.items():
        rows = part[kind]
        stats = [r["subspace"]["harmful"] for r in rows]
        ax.errorbar(
            [r["m"] + (0.06 if kind == "constrained" else -0.06) for r in rows],
            [s["value"] for s in stats],
            yerr=bar_errors(stats),
            marker=marker,
            color=colour,
            capsize=3,
            label=label,
        )
    controls = [r["random"]["harmful"] for r in part["constrained"]]
    ax.errorbar(
        [r["m"] for r in part["constrained"]],
        [s["value"] for s in controls],
        yerr=bar_errors(controls),
        marker="x",
        color="#7f7f7f",
        ls=":",
        capsize=3,
        label="random subspace, same constraint",
    )
    ax.axhline(threshold, color="#999999", lw=0.8, ls="--", label=f"threshold {threshold:g}")
    ax.set_xticks([r["m"] for r in part["constrained"]])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("m, the dimension of the ablated subspace")
    ax.set_ylabel("harmful refusal (held-out prompts)")
    ax.legend(fontsize=7, loc="center right")
    n = part["constrained"][0]["subspace"]["harmful"]["n"]
    ax.set_title(f"{title}: the smallest subspace that bypasses refusal (n = {n})", fontsize=9)
    return save(fig, path)
