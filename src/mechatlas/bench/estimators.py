"""The d = 4096 estimator benchmark: one ``subspace_dimensionality`` call against the dense code it replaced.

The call the issue sizes the target by: spectral, n = 600 prompts per class, d = 4096 (Llama-3.1-8B's
width), 50 bootstraps, 100 permutations, on planted activations with a known answer. The current
implementation (sample space, every core) is timed whole. The dense reference
(``mechatlas.interp.geometry.reference``, one d x d eigenvalue problem per whitening, one thread) would
take about half an hour, so it is timed with 0 and with 1 bootstrap and extrapolated linearly to 50
(its cost is one whitening plus the permutations, plus one whitening per bootstrap); the report says so.
Both are also run at d = 512, n = 150 per class in full, where their answers must agree exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mechatlas.interp.geometry import planted_activations, subspace_dimensionality
from mechatlas.interp.geometry.reference import spectral_dimensionality_reference
from mechatlas.io import write_json, write_text
from mechatlas.paths import BENCH

TARGET_SECONDS = 30.0


def _timed(function: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def run(out: Path = BENCH, *, quick: bool = False) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    n, d, n_bootstrap, n_permutations = (300 if quick else 600), 4096, 50, 100
    data = planted_activations(2, d_model=d, n_per_class=n, seed=0)
    fast, fast_seconds = _timed(
        lambda: subspace_dimensionality(
            data.harmful, data.harmless, n_bootstrap=n_bootstrap, n_permutations=n_permutations, seed=0
        )
    )
    ref0, ref0_seconds = _timed(
        lambda: spectral_dimensionality_reference(
            data.harmful, data.harmless, n_bootstrap=0, n_permutations=n_permutations, seed=0
        )
    )
    _, ref1_seconds = _timed(
        lambda: spectral_dimensionality_reference(
            data.harmful, data.harmless, n_bootstrap=1, n_permutations=n_permutations, seed=0
        )
    )
    per_bootstrap = max(ref1_seconds - ref0_seconds, 0.0)
    reference_seconds = ref0_seconds + n_bootstrap * per_bootstrap
    small = planted_activations(2, d_model=512, n_per_class=150, seed=1)
    settings = dict(n_bootstrap=n_bootstrap, n_permutations=n_permutations, seed=0)
    small_fast = subspace_dimensionality(small.harmful, small.harmless, **settings)  # type: ignore[arg-type]
    small_ref = spectral_dimensionality_reference(small.harmful, small.harmless, **settings)  # type: ignore[arg-type]
    report = {
        "call": {
            "method": "spectral",
            "n_per_class": n,
            "d_model": d,
            "n_bootstrap": n_bootstrap,
            "n_permutations": n_permutations,
            "planted_k": 2,
        },
        "seconds": {
            "current": fast_seconds,
            "reference_extrapolated": reference_seconds,
            "reference_measured_0_bootstraps": ref0_seconds,
            "reference_measured_1_bootstrap": ref1_seconds,
            "reference_per_bootstrap": per_bootstrap,
        },
        "speed_up": reference_seconds / fast_seconds,
        "target_seconds": TARGET_SECONDS,
        "meets_target": fast_seconds <= TARGET_SECONDS,
        "answers_at_d4096": {
            "current_k": fast.k,
            "current_ci95": list(fast.ci),
            "reference_k": ref0.k,
            "threshold_relative_difference": abs(fast.extra["null_threshold"] - ref0.threshold)
            / max(abs(ref0.threshold), 1e-300),
        },
        "answers_at_d512_n150": {
            "current": {"k": small_fast.k, "ci95": list(small_fast.ci)},
            "reference": {"k": small_ref.k, "ci95": list(small_ref.ci)},
            "bootstrap_counts_identical": bool(np.array_equal(small_fast.bootstrap_k, small_ref.bootstrap_k)),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        },
    }
    write_json(out / "estimators.json", report)
    write_text(out / "estimators.md", markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    c, s = report["call"], report["seconds"]
    m, small = report["machine"], report["answers_at_d512_n150"]
    return "\n".join(
        [
            "# Geometry estimators at d = 4096",
            "",
            f"One `subspace_dimensionality` call: spectral, n = {c['n_per_class']} prompts per class, d = {c['d_model']}, "
            f"{c['n_bootstrap']} bootstraps, {c['n_permutations']} permutations, planted k = {c['planted_k']}. "
            f"Machine: {m['cpus']} CPUs, load average {m['load_average_1min']['before']:.1f} → "
            f"{m['load_average_1min']['after']:.1f} (shared; other processes only add time).",
            "",
            "| implementation | seconds | how |",
            "|---|---|---|",
            f"| current (sample space, every core) | {s['current']:.1f} | measured, whole call |",
            f"| reference (dense d x d, one thread) | {s['reference_extrapolated']:.0f} | measured with 0 and 1 bootstrap "
            f"({s['reference_measured_0_bootstraps']:.0f} s, {s['reference_measured_1_bootstrap']:.0f} s), "
            f"extrapolated to {c['n_bootstrap']} |",
            "",
            f"Speed-up **{report['speed_up']:.0f}×**; target ≤ {report['target_seconds']:.0f} s: "
            f"{'met' if report['meets_target'] else 'not met'}. At d = 4096 the current call finds k = "
            f"{report['answers_at_d4096']['current_k']} (95% CI {report['answers_at_d4096']['current_ci95']}), the "
            f"reference k = {report['answers_at_d4096']['reference_k']}; their permutation thresholds differ by "
            f"{report['answers_at_d4096']['threshold_relative_difference']:.1e} (relative).",
            "",
            f"Same call at d = 512, n = 150 per class, both run in full: current k = {small['current']['k']} "
            f"{small['current']['ci95']}, reference k = {small['reference']['k']} {small['reference']['ci95']}; "
            f"bootstrap counts identical: {small['bootstrap_counts_identical']}.",
            "",
        ]
    )
