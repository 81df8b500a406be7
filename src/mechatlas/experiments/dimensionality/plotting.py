"""Drawing helpers shared by the dimensionality figures: saving a figure, a placeholder, CI error bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mechatlas.experiments.common import save_figure


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` (SVG for ``.svg``, deterministic) and return the path."""
    return save_figure(fig, path, dpi=140)


def bar_errors(stats: list[dict[str, Any]]) -> list[list[float]]:
    """Error-bar lengths below and above each rate (never negative: a Wilson bound can sit 1e-17 off)."""
    return [
        [max(st["value"] - st["ci95"][0], 0.0) for st in stats],
        [max(st["ci95"][1] - st["value"], 0.0) for st in stats],
    ]


def unavailable(path: Path, title: str, reason: str) -> Path:
    """A figure that says why there is nothing to draw (a degenerate layer, too few prompts per domain)."""
    fig = Figure(figsize=(6, 1.6), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}: not available\n{reason}", ha="center", va="center", fontsize=9, wrap=True)
    return save(fig, path)


def errorbar(
    ax: Axes,
    x: float | int,
    value: float | int | None,
    ci: list[float | int | None] | None,
    **style: Any,
) -> None:
    """One point at ``(x, value)`` with its CI as an error bar (none without a CI; nothing without a value)."""
    if value is None:
        return
    low, high = ci if ci and None not in ci else (value, value)
    below, above = max(value - low, 0.0), max(high - value, 0.0)  # type: ignore[operator]
    ax.errorbar([x], [value], yerr=[[below], [above]], capsize=3, **style)
