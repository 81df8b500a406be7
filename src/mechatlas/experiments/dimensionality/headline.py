"""The dimensionality result page's headline: the estimated dimension of refusal per layer and estimator.

The site shows it first on the page (``mechatlas.experiments.registry`` names it); the generic
tables of ``mechatlas.site.tables`` still show every number of the record below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.markdown import fmt_estimate, fmt_metric, fmt_number, md_text, readable_token, table


def dimensionality_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Layer × estimator: the estimated dimension of refusal, with its 95% CI, at the selected position."""
    rows = [r for r in metrics["dimensionality"]["table"] if r.get("selected_position")]
    flat = {int(r["layer"]): r.get("note") for r in rows if r.get("note")}  # e.g. an embedding layer
    estimators: list[str] = []
    by_layer: dict[int, dict[str, str]] = {}
    for r in rows:
        if int(r["layer"]) in flat:
            continue
        estimator = str(r["estimator"])
        if estimator not in estimators:
            estimators.append(estimator)
        k = r.get("k")
        if k is None:
            cell = md_text(r.get("control") or "not reached")
        else:
            has_ci = r.get("ci_low") is not None and r.get("ci_high") is not None
            cell = fmt_estimate(k, [r["ci_low"], r["ci_high"]] if has_ci else None)
        by_layer.setdefault(int(r["layer"]), {})[estimator] = cell
    selected = metrics["dimensionality"].get("selected", {})
    lines = [
        "The number of dimensions refusal takes, per layer, at the selected prompt position "
        f"({md_text(readable_token(selected.get('token', '?')))}, position {md_text(selected.get('position', '?'))}), by each "
        "estimator, with 95% bootstrap intervals. The causal rows count how many top directions must be "
        "ablated before harmful refusal falls below the threshold; the random-direction row is their control.",
        "",
        *table(
            ["layer", *(md_text(e) for e in estimators)],
            (
                [str(layer), *(cells.get(e, "—") for e in estimators)]
                for layer, cells in sorted(by_layer.items())
            ),
        ),
    ]
    lines += [f"Layer {layer}: {md_text(note)}; no estimate.\n" for layer, note in sorted(flat.items())]
    if metrics.get("optimised"):
        from mechatlas.experiments.dimensionality.optimised_tables import optimised_headline

        lines += ["", *optimised_headline(metrics["optimised"])]
    return lines


# --- Findings: the two to four sentences a result page, the home page and the blog post open with ---


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return fmt_number(low) if low == high else f"{fmt_number(low)}–{fmt_number(high)}"


def dimensionality_findings(metrics: Mapping[str, Any]) -> list[str]:
    """What the run found, in plain sentences with intervals and controls (plain text, not Markdown)."""
    rows = [
        r
        for r in metrics["dimensionality"]["table"]
        if r.get("selected_position") and not r.get("note") and r.get("k") is not None
    ]

    def estimates(prefix: str) -> list[Mapping[str, Any]]:
        return [r for r in rows if str(r["estimator"]).startswith(prefix)]

    sentences = []
    spectral, probe = estimates("spectral (parallel"), estimates("probe")
    causal = metrics.get("causal") or {}
    layer = causal.get("selected_layer")
    sweep = (causal.get("sweeps") or {}).get(str(layer)) or {}
    if spectral:
        layers = sorted(int(r["layer"]) for r in spectral)
        text = (
            f"Counting eigenvalues above a permutation null (parallel analysis), the difference between "
            f"harmful and harmless prompts spans {_span([float(r['k']) for r in spectral])} dimensions at "
            f"layers {layers[0]}–{layers[-1]} (95% bootstrap intervals "
            f"{_span([float(r['ci_low']) for r in spectral] + [float(r['ci_high']) for r in spectral])})"
        )
        if probe:
            text += f", and iterated linear probes (INLP) find {_span([float(r['k']) for r in probe])}"
        sentences.append(text + ".")
    if sweep.get("spectral") and sweep.get("random"):
        top = sweep["spectral"]["curve"].get("1")
        random = sweep["random"]["curve"].get("1")
        base = (causal.get("baseline") or {}).get("harmful")
        if top and random:
            k = sweep["spectral"].get("k")
            lead = (
                "Yet causally one direction suffices"
                if k == 1
                else f"Causally, {fmt_number(k)} top directions must be ablated"
                if k is not None
                else "Causally, no number of top directions tested took refusal below the threshold"
            )
            sentences.append(
                f"{lead}: at layer {layer}, ablating the top direction takes harmful refusal"
                + (f" from {fmt_metric(base, with_n=False)}" if base else "")
                + f" to {fmt_metric(top, with_n=False)} (n = {top.get('n')}), while ablating a random "
                f"direction leaves it at {fmt_metric(random, with_n=False)}."
            )
    domains = (metrics.get("domains") or {}).get(str(layer)) or {}
    between = domains.get("mean_off_diagonal_cosine")
    null = domains.get("between_domain_null")
    if isinstance(between, Mapping) and isinstance(null, Mapping) and null.get("threshold") is not None:
        corrected = " (bias-corrected)" if "plug_in" in between else ""
        text = (
            f"The {len(domains.get('domains', []))} harm domains' directions have a mean cosine of "
            f"{fmt_metric(between, with_n=False)} between domains{corrected}; uncorrected, "
            f"{fmt_number(null['observed'])} against {fmt_number(null['threshold'])}, the 5th percentile of the "
            f"same cosine when the domain labels are permuted within framings ({null['n_permutations']} "
            f"permutations, p = {fmt_number(null['p_value'])})"
        )
        transfer = causal.get("transfer") or {}
        cells = [c for row in transfer.get("rates", []) for c in row if isinstance(c, Mapping)]
        threshold = (metrics.get("settings") or {}).get("refusal_threshold")
        if cells and isinstance(threshold, int | float):
            worst = max(cells, key=lambda c: float(c.get("value", 0)))
            every = float(worst.get("value", 1)) < threshold
            text += (
                "; ablating any one domain's direction removes refusal in every domain"
                if every
                else "; ablating one domain's direction does not remove refusal in every domain"
            ) + f" (at most {fmt_metric(worst, with_n=False)} refused)"
        sentences.append(text + ".")
    versus = (metrics.get("harmfulness_vs_refusal") or {}).get(str(layer)) or {}
    harm = (causal.get("harmfulness") or {}).get("rates") or {}
    if isinstance(versus.get("cosine"), Mapping) and harm:
        ablated = harm["ablate"]["instruction"]["harmful"]
        added = harm["add"]["instruction"]["harmless"]
        refusal_added = harm["add"]["post_instruction"]["harmless"]
        sentences.append(
            "A harmfulness direction, read at the instruction's last token, has a cosine of "
            f"{fmt_metric(versus['cosine'], with_n=False)} with the refusal direction (95% CI resampling by "
            f"{versus['cosine'].get('interval_unit', 'prompt')}): ablating it leaves harmful refusal at "
            f"{fmt_metric(ablated, with_n=False)}, and adding it makes {fmt_metric(added, with_n=False)} of "
            f"harmless prompts refused, against {fmt_metric(refusal_added, with_n=False)} for the refusal "
            "direction."
        )
    if metrics.get("optimised"):
        from mechatlas.experiments.dimensionality.optimised_tables import optimised_findings

        sentences += optimised_findings(metrics["optimised"])
    return sentences


# --- Figures with nothing to draw: the site says so in words instead of showing an empty plot ---------


def dimensionality_figure_notes(metrics: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``{figure stem: (kind, text)}`` from the record: ``replace`` (the figure would be a degenerate plot:
    show the text instead) or ``note`` (add the text to the caption)."""
    notes: dict[str, tuple[str, str]] = {}
    causal = metrics.get("causal") or {}
    sweeps = {
        layer: sweep
        for layer, sweep in (causal.get("sweeps") or {}).items()
        if isinstance(sweep, Mapping) and not sweep.get("degenerate")
    }
    tested = [
        estimator
        for sweep in sweeps.values()
        for name, estimator in sweep.items()
        if isinstance(estimator, Mapping) and name != "random" and "max_k_evaluated" in estimator
    ]
    if tested and all(int(e["max_k_evaluated"]) <= 1 and e.get("crossed") for e in tested):
        notes["causal_sweep"] = (
            "replace",
            f"No sweep to draw: at every layer tested ({', '.join(sorted(sweeps))}), ablating the top direction "
            "alone (k = 1) already took harmful refusal below the threshold, so the sweep stopped at its first "
            "step; the numbers are in the headline table above and in the record.",
        )
    rates = ((causal.get("cone") or {}).get("rates") or {}).get("harmful", {}).get("ablate", {})
    values = [r.get("value") for r in rates.values() if isinstance(r, Mapping)]
    if values and all(v == 0 for v in values):
        notes["cone"] = (
            "note",
            "The left panel looks empty because every bar is at 0%: ablating any one generator, or their span, "
            "removes refusal entirely.",
        )
    return notes
