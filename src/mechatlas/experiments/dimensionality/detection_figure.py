"""The detection-limit figure: what each dimensionality estimator recovers when k = 1 … 8 is planted at the
study's own n, d and measured signal strength (``mechatlas.interp.geometry.detection``), beside what it
found on the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mechatlas.experiments.dimensionality.plotting import save, unavailable

STYLE = {"spectral": ("#1f77b4", "o"), "probe": ("#2ca02c", "s")}


def detection_limits(geo: dict[str, Any], path: Path, *, title: str) -> Path:
    """Recovered versus planted k per estimator, the diagonal, and the k each found on the model."""
    limits = geo.get("detection_limits")
    if not limits or not any(limits["curves"].values()):
        return unavailable(path, title, "no detection-limit simulation (the selected layer is degenerate)")
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.subplots()
    top = max(row["planted_k"] for rows in limits["curves"].values() for row in rows)
    ax.plot([0, top + 0.5], [0, top + 0.5], color="#999999", lw=0.8, ls="--", label="recovered = planted")
    for method, rows in limits["curves"].items():
        colour, marker = STYLE.get(method, ("#7f7f7f", "x"))
        found = limits.get("found", {}).get(method)
        ax.plot(
            [r["planted_k"] for r in rows],
            [r["recovered_k"] for r in rows],
            marker=marker,
            color=colour,
            label=f"{method} (limit {limits['detection_limit'][method]}; found {found} on the model)",
        )
        if found is not None:
            ax.axhline(found, color=colour, lw=0.8, ls=":")
    ax.set_xlabel("planted k")
    ax.set_ylabel("recovered k")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(
        f"{title}: detection limits at layer {limits['layer']} (n = {limits['n_per_class']} per class, "
        f"d = {limits['d_model']}, d′ = {limits['separation']:.2f})",
        fontsize=9,
    )
    return save(fig, path)
