"""Figures of the dimensionality study: cheap plots of numbers the slow stages wrote.

Every function reads already-computed results (``geometry.json``, ``causal.json``, ``metrics.json``),
draws one figure (SVG) with matplotlib's object API (no global ``pyplot`` state) and returns its path, so changing
a plot reruns only the plotting rule. Every number drawn carries its CI; every figure names its n.

``figures`` draws every figure named in ``FIGURES`` and writes a README with the verdicts. The figures by
layer are ``layer_figures``'s; the per-domain, cone and harmfulness-versus-refusal figures are
``domain_figures``'s; the drawing helpers they share are ``plotting``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

from mechatlas.errors import ArtifactError
from mechatlas.experiments import registry
from mechatlas.experiments.dimensionality.detection_figure import detection_limits
from mechatlas.experiments.dimensionality.domain_figures import (
    cone,
    domain_cosines,
    domain_dimensionality,
    domain_subspace_overlap,
    harmfulness_vs_refusal,
    transfer_matrix,
)
from mechatlas.experiments.dimensionality.layer_figures import (
    causal_sweep,
    dimensionality_by_layer,
    inlp_accuracy,
    spectra,
)
from mechatlas.experiments.dimensionality.optimised_figure import optimised_bypass
from mechatlas.io import write_text
from mechatlas.paths import FIGURE_SUFFIX
from mechatlas.records import code_version

FIGURES = registry.get("dimensionality").figures  # the stems of the figure files, in drawing order


def figures(results_dir: Path, out_dir: Path) -> list[Path]:
    """Every figure of the study, from ``geometry.json``, ``causal.json`` and ``metrics.json``."""
    loaded = {}
    for part in ("geometry", "causal", "metrics"):
        path = results_dir / f"{part}.json"
        if not path.exists():
            raise ArtifactError(f"{path}: missing; run the dimensionality stages first")
        loaded[part] = json.loads(path.read_text())
    geo, causal, record = loaded["geometry"], loaded["causal"], loaded["metrics"]
    metrics = record["metrics"]
    title = record["provenance"]["model"]["name"]
    settings = metrics["settings"]
    out = {name: out_dir / f"{name}{FIGURE_SUFFIX}" for name in FIGURES}
    paths = [
        dimensionality_by_layer(metrics, out["dimensionality_by_layer"], title=title),
        spectra(geo, out["spectra"], title=title),
        inlp_accuracy(geo, out["inlp_accuracy"], title=title),
        causal_sweep(causal, settings["refusal_threshold"], out["causal_sweep"], title=title),
        domain_cosines(geo, out["domain_cosines"], title=title),
        domain_subspace_overlap(geo, out["domain_subspace_overlap"], title=title),
        domain_dimensionality(geo, out["domain_dimensionality"], title=title),
        transfer_matrix(causal, out["transfer_matrix"], title=title),
        cone(
            causal,
            {"refusal": settings["refusal_threshold"], "induce": settings["induce_threshold"]},
            out["cone"],
            title=title,
        ),
        harmfulness_vs_refusal(geo, causal, out["harmfulness_vs_refusal"], title=title),
        detection_limits(geo, out["detection_limits"], title=title),
        optimised_bypass(metrics, settings["refusal_threshold"], out["optimised_bypass"], title=title),
    ]
    provenance = record["provenance"]
    verdicts = "\n".join(
        f"- `{r['paper']}` / `{r['claim']}`: **{r['verdict']}** ({r['reason']})" for r in record["replicates"]
    )
    write_text(
        out_dir / "README.md",
        f"Figures of the dimensionality study on `{title}`, made by `mechatlas.experiments.dimensionality.figures` from "
        f"{code_version(provenance)} and data/results/dimensionality/{title}/ (`{provenance['command']}`).\n\n"
        f"Verdicts (rules in metrics.json, `verdict_rules`):\n\n{verdicts}\n",
    )
    return paths
