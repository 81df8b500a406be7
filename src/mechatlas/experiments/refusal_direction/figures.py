"""Figures of the refusal-direction replication: cheap plots of numbers the slow stages wrote.

Each function takes already-computed tables or metrics, draws one figure (SVG) and returns its path, so changing
a plot reruns only the plotting rule. Figures are built with matplotlib's object API (``Figure``, which
renders with the Agg backend) rather than ``pyplot``, so no global state or display is involved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mechatlas.errors import ArtifactError
from mechatlas.experiments.common import save_figure
from mechatlas.io import write_text
from mechatlas.paths import FIGURE_SUFFIX
from mechatlas.records import code_version

CONDITIONS = ("baseline", "ablation", "actadd", "random_ablation", "random_actadd")


COLOURS = {
    "baseline": "#4c4c4c",
    "ablation": "#1f77b4",
    "actadd": "#d62728",
    "random_ablation": "#aec7e8",
    "random_actadd": "#ff9896",
}


LABELS = {
    "baseline": "baseline",
    "ablation": "ablation",
    "actadd": "addition (harmless) /\nsubtraction (harmful)",
    "random_ablation": "random ablation",
    "random_actadd": "random addition /\nsubtraction",
}


def _save(fig: Figure, path: Path) -> Path:
    return save_figure(fig, path, dpi=150)


def candidate_heatmaps(table: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Bypass, induce and KL scores over position × layer; × marks candidates a filter removes, □ the choice."""
    panels = [
        ("bypass_score", "bypass score\n(refusal score, harmful, ablated; lower is better)", "RdBu_r"),
        ("induce_score", "induce score\n(refusal score, harmless, added; higher is better)", "RdBu_r"),
        ("kl_score", "KL score\n(harmless next-token KL under ablation)", "magma_r"),
    ]
    positions = sorted(table["position"].unique())
    layers = sorted(table["layer"].unique())
    tokens = table.drop_duplicates("position").set_index("position")["token"]
    fig = Figure(figsize=(4.2 * 3, 0.45 * len(positions) + 2.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (column, name, cmap) in zip(axes, panels, strict=True):
        grid = table.pivot(index="position", columns="layer", values=column).reindex(
            index=positions, columns=layers
        )
        values = grid.to_numpy(dtype=float)
        if cmap == "RdBu_r":
            bound = float(np.nanmax(np.abs(values))) or 1.0
            image = ax.imshow(values, cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
        else:
            image = ax.imshow(values, cmap=cmap, vmin=0, aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.9)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(layers)), [str(layer) for layer in layers], fontsize=7)
        ax.set_yticks(range(len(positions)), [f"{tokens[p]!r} ({p})" for p in positions], fontsize=7)
        ax.set_xlabel("layer (hook_resid_pre)")
        for row in table.itertuples():
            y, x = positions.index(row.position), layers.index(row.layer)
            if not (row.passes_layer and row.passes_kl and row.passes_induce):
                ax.text(x, y, "×", ha="center", va="center", fontsize=7, color="#555555")
            if row.selected:
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="lime", linewidth=2))
    axes[0].set_ylabel("post-instruction token (offset)")
    fig.suptitle(f"{title}: candidate refusal directions (× filtered out, □ selected)", fontsize=10)
    return _save(fig, path)


def _error_bars(stats: list[Mapping[str, Any]]) -> np.ndarray:
    """(2, n) distances from each value to its CI bounds; clipped at 0 against rounding at rates of 0 and 1."""
    values = np.array([s["value"] for s in stats], dtype=float)
    bounds = np.array([s["ci95"] for s in stats], dtype=float)  # (n, 2)
    return np.clip(np.stack([values - bounds[:, 0], bounds[:, 1] - values]), 0, None)


def _bars(ax: Any, rates: Mapping[str, Any], conditions: list[str], label: str) -> None:
    xs = np.arange(len(conditions))
    stats = [rates[c][label] for c in conditions]
    values = [s["value"] for s in stats]
    errors = _error_bars(stats)
    ax.bar(
        xs,
        values,
        yerr=errors,
        capsize=4,
        color=[COLOURS[c] for c in conditions],
        hatch=None,
        edgecolor="black",
        linewidth=0.5,
    )
    for x, v, c in zip(xs, values, conditions, strict=True):
        ax.text(
            x, min(v + 0.04, 1.02), f"{v:.2f}\nn={rates[c][label]['n']}", ha="center", va="bottom", fontsize=7
        )
    ax.set_xticks(xs, [LABELS[c] for c in conditions], fontsize=7, rotation=20, ha="right")
    ax.set_ylim(0, 1.15)


def refusal_rate_bars(metrics: Mapping[str, Any], path: Path, *, title: str = "") -> Path:
    """Refusal rates with 95% CIs under each condition, the random-direction control beside each intervention."""
    judge = metrics["verdict_judge"]
    rates = metrics["refusal_rate"][judge]
    conditions = [c for c in CONDITIONS if c in rates]
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, label in zip(axes, ("harmful", "harmless"), strict=True):
        _bars(ax, rates, conditions, label)
        ax.set_title(f"{label} test prompts", fontsize=10)
    axes[0].set_ylabel(f"refusal rate ({judge} judge, 95% Wilson CI)")
    fig.suptitle(
        f"{title}: refusal under the refusal direction and a random direction of equal norm", fontsize=10
    )
    return _save(fig, path)


def refusal_rates_by_domain(metrics: Mapping[str, Any], path: Path, *, title: str = "") -> Path:
    """Per-domain refusal rates: ablation on harmful domains, addition on harmless ones, with controls."""
    judge = metrics["verdict_judge"]
    per_domain = metrics["refusal_rate_per_domain"][judge]
    panels = [
        ("harmful", ["baseline", "ablation", "random_ablation"]),
        ("harmless", ["baseline", "actadd", "random_actadd"]),
    ]
    domains = {label: sorted(per_domain["baseline"][label]) for label, _ in panels}
    height = 0.5 * max(len(d) for d in domains.values()) + 1.5
    fig = Figure(figsize=(11, height), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (label, conditions) in zip(axes, panels, strict=True):
        ys = np.arange(len(domains[label]))
        width = 0.8 / len(conditions)
        for i, condition in enumerate(conditions):
            stats = [per_domain[condition][label][d] for d in domains[label]]
            values = np.array([s["value"] for s in stats])
            errors = _error_bars(stats)
            ax.barh(
                ys + i * width,
                values,
                height=width,
                xerr=errors,
                capsize=2,
                color=COLOURS[condition],
                label=LABELS[condition].replace("\n", " "),
            )
        ax.set_yticks(ys + width * (len(conditions) - 1) / 2, domains[label], fontsize=8)
        ax.set_xlim(0, 1.05)
        ax.set_xlabel(f"refusal rate ({judge} judge, 95% Wilson CI)")
        ax.set_title(f"{label} test prompts by domain", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    fig.suptitle(f"{title}: refusal by domain", fontsize=10)
    return _save(fig, path)


# --- the figures stage ---------------------------------------------------------------------------------


def figures(res_dir: Path, out_dir: Path) -> list[Path]:
    """Candidate-score heatmaps and refusal-rate bars (with the random control) as SVG files."""
    for needed in ("candidates.parquet", "metrics.json"):
        if not (res_dir / needed).exists():
            raise ArtifactError(f"{res_dir / needed}: missing; run the refusal-direction stages first")
    table = pd.read_parquet(res_dir / "candidates.parquet")
    metrics = json.loads((res_dir / "metrics.json").read_text())
    model = metrics["provenance"]["model"]["name"]
    paths = [
        candidate_heatmaps(table, out_dir / f"candidate_scores{FIGURE_SUFFIX}", title=model),
        refusal_rate_bars(metrics["metrics"], out_dir / f"refusal_rates{FIGURE_SUFFIX}", title=model),
        refusal_rates_by_domain(
            metrics["metrics"], out_dir / f"refusal_rates_by_domain{FIGURE_SUFFIX}", title=model
        ),
    ]
    write_text(out_dir / "README.md", _figures_readme(metrics))
    return paths


def _figures_readme(metrics: dict[str, Any]) -> str:
    provenance = metrics["provenance"]
    return (
        f"Figures of the refusal-direction replication on `{provenance['model']['name']}`, made by "
        f"`mechatlas.experiments.refusal_direction.figures` from {code_version(provenance)} and  "
        f"data/results/refusal_direction/{provenance['model']['name']}/ (`{provenance['command']}`).\n"
    )
