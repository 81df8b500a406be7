"""Figures of harm domains, the cone check and harmfulness versus refusal, at the analysed layers.

Each reads already-computed results (``geometry.json``, ``causal.json``) and draws one figure (SVG), or a
placeholder saying why there is nothing to draw: ``domain_cosines``, ``domain_subspace_overlap`` and
``domain_dimensionality`` (per-domain directions and subspaces), ``transfer_matrix`` (cross-domain
ablation and leave-one-domain-out), ``cone`` (the concept-cone check of Wollschläger et al.,
arXiv 2502.17420) and ``harmfulness_vs_refusal`` (Zhao et al., arXiv 2507.11878).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mechatlas.experiments.dimensionality.plotting import bar_errors, errorbar, save, unavailable


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _comparable(domains: dict[str, Any]) -> dict[str, Any]:
    """The layers whose per-domain analysis ran (varying activations, two or more domains with prompts)."""
    return {layer: d for layer, d in domains.items() if "cosine" in d}


def _heatmaps(
    per_layer: dict[str, dict[str, Any]],
    key: str,
    path: Path,
    *,
    title: str,
    vmin: float,
    vmax: float,
    cmap: str,
) -> Path:
    layers = list(_comparable(per_layer))
    if not layers:
        return unavailable(
            path, title, "no layer has two harm domains with enough prompts and varying activations"
        )
    fig = Figure(figsize=(4.2 * max(len(layers), 1), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(layers), 1)))
    image = None
    for ax, layer in zip(axes, layers, strict=False):
        d = per_layer[layer]
        matrix = np.array(d[key], dtype=float)
        names = d["domains"]
        image = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap=cmap)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5)
        ax.set_title(f"L{layer}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def domain_cosines(geo: dict[str, Any], path: Path, *, title: str) -> Path:
    """Cosines between per-domain directions; the colour scale starts at the lowest value shown, since on a
    model whose domains share most of one direction they all sit near 1."""
    domains = _comparable(geo["domains"])
    some: dict[str, Any] = next(iter(domains.values()), {})
    null = some.get("between_domain_null") or {}
    ceiling = (
        f"; mean between domains {null['observed']:.3f}, permutation null's 5th percentile "
        f"{null['threshold']:.3f}"
        if null.get("threshold") is not None
        else ""
    )
    return _heatmaps(
        domains,
        "cosine",
        path,
        vmin=float(np.floor(100 * min(np.min(d["cosine"]) for d in domains.values())) / 100) if some else 0.0,
        vmax=1.0,
        cmap="viridis",
        title=f"{title}: cosine between per-domain difference-in-means directions{ceiling}",
    )


def domain_subspace_overlap(geo: dict[str, Any], path: Path, *, title: str) -> Path:
    some: dict[str, Any] = next(iter(_comparable(geo["domains"]).values()), {})
    rank = some.get("subspace_rank", 0)
    chance = some.get("random_subspace_overlap", float("nan"))
    return _heatmaps(
        geo["domains"],
        "subspace_overlap",
        path,
        vmin=0.0,
        vmax=1.0,
        cmap="magma",
        title=f"{title}: overlap of per-domain top-{rank} spectral subspaces (mean cos² of principal angles; random ≈ {chance:.2f})",
    )


def domain_dimensionality(geo: dict[str, Any], path: Path, *, title: str) -> Path:
    """Spectral k per harm domain (domain's harmful prompts vs all harmless), per layer, with CIs."""
    layers = list(_comparable(geo["domains"]))
    if not layers:
        return unavailable(path, title, "no layer has two harm domains with enough prompts")
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    for i, layer in enumerate(layers):
        d = geo["domains"][layer]
        names = d["domains"]
        for j, name in enumerate(names):
            r = d["dimensionality"][name]
            errorbar(
                ax,
                j + (i - len(layers) / 2) * 0.12,
                r["k"],
                r["ci95"],
                color=f"C{i}",
                marker="o",
                ls="none",
                label=f"L{layer}" if j == 0 else None,
            )
    if layers:
        names = geo["domains"][layers[0]]["domains"]
        ax.set_xticks(
            range(len(names)),
            [f"{n}\n(n={geo['domains'][layers[0]]['n_harmful'][n]})" for n in names],
            fontsize=7,
        )
    ax.set_ylabel("spectral k (domain vs harmless)")
    ax.set_title(f"{title}: dimensionality per harm domain (95% CIs)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, path)


def transfer_matrix(causal: dict[str, Any], path: Path, *, title: str) -> Path:
    """Refusal on domain B (columns) with domain A's direction ablated (rows), plus baseline and pooled rows."""
    if "transfer" not in causal:
        return unavailable(path, title, "no per-domain directions at the refusal direction's layer")
    t = causal["transfer"]
    rows = [[c["value"] for c in row] for row in t["rates"]]
    rows += [[c["value"] for c in t["baseline"]], [c["value"] for c in t["pooled"]]]
    labels = [*t["sources"], "— no ablation", "— pooled direction"]
    matrix = np.array(rows, dtype=float)
    fig = Figure(figsize=(7, 6), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[3, 1.3])
    image = axes[0].imshow(matrix, vmin=0, vmax=1, cmap="RdYlGn_r")
    axes[0].set_xticks(range(len(t["targets"])), t["targets"], rotation=90, fontsize=7)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    for (i, j), v in np.ndenumerate(matrix):
        axes[0].text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    axes[0].set_xlabel("refusal measured on domain")
    axes[0].set_ylabel("direction ablated")
    fig.colorbar(image, ax=axes[0], shrink=0.7, label="refusal rate")
    lodo = causal["lodo"]
    names = list(lodo)
    for offset, (key, colour) in enumerate(
        (
            ("own_direction", "#d62728"),
            ("leave_one_out_direction", "#1f77b4"),
            ("pooled_direction", "#7f7f7f"),
        )
    ):
        for j, name in enumerate(names):
            r = lodo[name][key]
            axes[1].errorbar(
                [r["value"]],
                [j + (offset - 1) * 0.2],
                xerr=bar_errors([r]),
                color=colour,
                marker="o",
                ls="none",
                capsize=2,
                label=key.replace("_", " ") if j == 0 else None,
            )
    axes[1].set_yticks(range(len(names)), names, fontsize=7)
    axes[1].set_xlim(-0.02, 1.02)
    axes[1].set_xlabel("refusal on the domain itself")
    axes[1].legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    n = causal["transfer"]["baseline"][0]["n"] if causal["transfer"]["baseline"] else 0
    fig.suptitle(
        f"{title}: cross-domain transfer and leave-one-domain-out (n ≈ {n} per domain; Wilson 95% CIs)",
        fontsize=10,
    )
    return save(fig, path)


def cone(causal: dict[str, Any], thresholds: dict[str, float], path: Path, *, title: str) -> Path:
    """The cone check: single and span ablations (harmful), single and combined additions (harmless)."""
    if "cone" not in causal:
        return unavailable(path, title, "no per-domain directions at the refusal direction's layer")
    c = causal["cone"]
    ablate, add = c["rates"]["harmful"]["ablate"], c["rates"]["harmless"]["add"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, rates, threshold, name in (
        (axes[0], ablate, thresholds["refusal"], "harmful refusal, direction ablated"),
        (axes[1], add, thresholds["induce"], "harmless refusal, direction added"),
    ):
        order = [*c["generators"], "span", *(f"combination-{i}" for i in range(len(rates))), "random"]
        keys = [k for k in order if k in rates]  # generators, their span, combinations, the control
        values = [rates[k]["value"] for k in keys]
        errors = bar_errors([rates[k] for k in keys])
        colours = [
            "#7f7f7f"
            if k == "random"
            else "#d62728"
            if k == "span"
            else "#ff7f0e"
            if k.startswith("combination")
            else "#1f77b4"
            for k in keys
        ]
        ax.bar(range(len(keys)), values, yerr=errors, color=colours, capsize=2)
        ax.axhline(threshold, color="black", ls="--", lw=0.8)
        ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=6)
        ax.set_ylim(0, 1.05)
        ax.set_title(name, fontsize=9)
    fig.suptitle(
        f"{title}: cone check with per-domain directions as generators (effective rank {c['effective_rank']:.2f})",
        fontsize=10,
    )
    return save(fig, path)


def harmfulness_vs_refusal(geo: dict[str, Any], causal: dict[str, Any], path: Path, *, title: str) -> Path:
    """Cosine of the two directions per layer; where each group projects at the selected layer; steering."""
    h = geo["harmfulness_vs_refusal"]
    layers = [layer for layer, d in h.items() if not d.get("degenerate")]
    selected = str(geo["selected"]["layer"])
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for layer in layers:
        c = h[layer]["cosine"]
        errorbar(axes[0], int(layer), c["value"], c["ci95"], color="#1f77b4", marker="o")
    axes[0].axhline(0, color="black", lw=0.6)
    axes[0].set_xticks([int(layer) for layer in layers], [f"L{layer}" for layer in layers])
    axes[0].set_ylim(-1, 1)
    axes[0].set_title("cosine: last-instruction-token vs\npost-instruction direction (95% CI)", fontsize=9)
    if selected in h and not h[selected].get("degenerate"):
        d = h[selected]
        for i, (name, _label) in enumerate(
            (
                ("instruction", "harmfulness\n(last instruction token)"),
                ("post_instruction", "refusal\n(post-instruction)"),
            )
        ):
            proj = d[name]["projection"]
            low, high = proj["harmless"]["mean"], proj["harmful"]["mean"]
            span = high - low if abs(high - low) > 1e-12 else 1.0
            for j, (group, colour) in enumerate(
                (("harmless", "#2ca02c"), ("alarming", "#ff7f0e"), ("harmful", "#d62728"))
            ):
                if not proj[group]["n"]:
                    continue  # e.g. a prompt set without alarming-but-harmless controls
                m = (proj[group]["mean"] - low) / span
                lo, hi = sorted((v - low) / span for v in proj[group]["ci95"])  # a negative span flips them
                axes[1].errorbar(
                    [m],
                    [i + (j - 1) * 0.15],
                    xerr=[[max(m - lo, 0.0)], [max(hi - m, 0.0)]],
                    color=colour,
                    marker="o",
                    capsize=2,
                    label=f"{group} (n={proj[group]['n']})" if i == 0 else None,
                )
            axes[1].text(
                1.05,
                i,
                f"AUC harmful/harmless {_num(d[name]['harmful_vs_harmless_auc']['value'])}\n"
                f"AUC alarming refused/complied {_num(d[name]['alarming_refused_vs_complied_auc']['value'])}",
                fontsize=6,
                va="center",
            )
        axes[1].set_yticks(
            [0, 1], ["harmfulness\n(last instruction token)", "refusal\n(post-instruction)"], fontsize=7
        )
        axes[1].set_xlabel("projection, 0 = harmless mean, 1 = harmful mean (held-out)")
        axes[1].legend(fontsize=6, loc="lower right")
        unit = d["instruction"]["projection"]["harmful"].get("interval_unit", "prompt")
        axes[1].set_title(f"where prompts sit (layer {selected});\n95% CIs resample {unit}", fontsize=9)
    rates = causal.get("harmfulness", {}).get("rates", {})
    bars = []
    for condition, label_set in (
        ("baseline", ("harmful", "harmless", "alarming")),
        ("ablate", ("harmful",)),
        ("add", ("harmless", "alarming")),
    ):
        for direction, by_label in rates.get(condition, {}).items():
            for label in label_set:
                if label in by_label:
                    bars.append((f"{condition} {direction}\n→ {label}", by_label[label]))
    values = [b[1]["value"] for b in bars]
    errors = bar_errors([b[1] for b in bars])
    axes[2].bar(range(len(bars)), values, yerr=errors, capsize=2, color="#9467bd")
    axes[2].set_xticks(range(len(bars)), [b[0] for b in bars], rotation=90, fontsize=6)
    axes[2].set_ylim(0, 1.05)
    axes[2].set_title(
        f"refusal rate under interventions (layer {selected};\nadded at the refusal direction's norm)",
        fontsize=9,
    )
    fig.suptitle(f"{title}: harmfulness versus refusal (Zhao et al. 2025)", fontsize=10)
    return save(fig, path)
