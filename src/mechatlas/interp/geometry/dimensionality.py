"""``subspace_dimensionality``: the one public entry to the representation-side estimators.

It runs the spectral estimator or INLP on two sets of activations and returns a frozen
``Dimensionality`` with the count, its bootstrap CI and the estimator's own diagnostics.

>>> from mechatlas.interp.geometry.planted import planted_activations
>>> data = planted_activations(2, d_model=32, n_per_class=300, seed=0)
>>> subspace_dimensionality(data.harmful, data.harmless, method="spectral", n_bootstrap=10).k
2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.geometry.inlp import ProbeFit, _probe_bootstrap, estimation_floor, probe_fit
from mechatlas.interp.geometry.spectral import SpectralFit, _spectral_bootstrap, spectral_fit
from mechatlas.interp.geometry.subspaces import _float64
from mechatlas.interp.threads import single_threaded
from mechatlas.stats import percentile_ci

Method = Literal["spectral", "probe"]


# --- the public estimator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimensionality:
    """A dimension estimate with its 95% bootstrap CI over prompts."""

    method: str
    k: int
    ci: tuple[float, float]
    n_harmful: int
    n_harmless: int
    n_bootstrap: int
    fit: SpectralFit | ProbeFit
    bootstrap_k: np.ndarray = field(repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. the participation ratio and its CI

    def summary(self) -> dict[str, Any]:
        """The numbers a metrics file records (JSON-ready)."""
        out: dict[str, Any] = {
            "k": self.k,
            "ci95": [float(self.ci[0]), float(self.ci[1])],
            "n_harmful": self.n_harmful,
            "n_harmless": self.n_harmless,
            "n_bootstrap": self.n_bootstrap,
        }
        out.update(self.extra)
        return out


@single_threaded
def subspace_dimensionality(
    harmful: Float[Tensor, "n_harmful d_model"],
    harmless: Float[Tensor, "n_harmless d_model"],
    method: Method = "spectral",
    seed: int = 0,
    *,
    n_bootstrap: int = 100,
    n_permutations: int = 100,
    max_k: int = 16,
    max_rank: int = 256,
    ridge: float = 1e-3,
    probe_l2: float = 0.1,
    probe_chance_margin: float = 0.1,
    probe_holdout: float = 0.3,
) -> Dimensionality:
    """How many dimensions separate ``harmful`` from ``harmless`` activations, with a bootstrap CI.

    ``method="spectral"``: parallel analysis of the whitened excess second moment; counts directions
    along which the class distributions differ; CI from rank-wise centred bootstrap spectra.
    ``method="probe"``: INLP; counts orthogonal cuts needed to erase linear decodability (blind to
    sub-type mixtures and to equal-scale features); percentile bootstrap CI. See ``mechatlas.interp.geometry``.

    >>> from mechatlas.interp.geometry.planted import planted_activations
    >>> data = planted_activations(3, d_model=64, n_per_class=400, seed=1)
    >>> result = subspace_dimensionality(data.harmful, data.harmless, method="spectral", n_bootstrap=10)
    >>> result.k, result.ci[0] <= result.k <= result.ci[1]
    (3, True)
    """
    h, b = _float64(harmful), _float64(harmless)
    if h.ndim != 2 or b.ndim != 2 or h.shape[1] != b.shape[1]:
        raise ValueError(
            f"need two (n, d_model) matrices with the same d_model, got {tuple(h.shape)} and {tuple(b.shape)}"
        )
    if len(h) < 4 or len(b) < 4:
        raise ValueError(f"need at least 4 prompts per class, got {len(h)} harmful and {len(b)} harmless")
    if method == "spectral":
        fit = spectral_fit(h, b, n_permutations=n_permutations, max_rank=max_rank, ridge=ridge, seed=seed)
        counts, participation = _spectral_bootstrap(
            h,
            b,
            fit.eigenvalues,
            fit.threshold,
            n_bootstrap=n_bootstrap,
            max_rank=max_rank,
            ridge=ridge,
            seed=seed + 1,
        )
        extra: dict[str, Any] = {
            "ci_method": "bootstrap over prompts, rank-wise centred spectra against the permutation threshold",
            "participation_ratio": fit.participation_ratio,
            "participation_ratio_ci95": list(percentile_ci(participation)),
            "null_threshold": fit.threshold,
            "n_permutations": n_permutations,
            "top_eigenvalues": [float(v) for v in fit.eigenvalues[:64]],
            "null_max_quantiles": {
                q: float(np.quantile(fit.null_max, float(q))) for q in ("0.05", "0.5", "0.95")
            },
            "whitened_rank": fit.rank,
        }
        return Dimensionality(
            "spectral", fit.k, percentile_ci(counts), len(h), len(b), n_bootstrap, fit, counts, extra
        )
    if method == "probe":
        probe = probe_fit(
            h,
            b,
            max_k=max_k,
            l2=probe_l2,
            chance_margin=probe_chance_margin,
            holdout=probe_holdout,
            seed=seed,
        )
        counts = _probe_bootstrap(
            h,
            b,
            n_bootstrap=n_bootstrap,
            max_k=max_k,
            l2=probe_l2,
            chance_margin=probe_chance_margin,
            holdout=probe_holdout,
            seed=seed + 1,
        )
        n_fit = len(h) + len(b) - round(len(h) * probe_holdout) - round(len(b) * probe_holdout)
        extra = {
            "ci_method": "percentile bootstrap over prompts (fit and held-out sides resampled separately)",
            "accuracy_curve": [float(a) for a in probe.accuracies],
            "chance_threshold": probe.chance,
            "estimation_floor": estimation_floor(h.shape[1], n_fit),
            "capped": probe.capped,
            "l2": probe_l2,
        }
        return Dimensionality(
            "probe", probe.k, percentile_ci(counts), len(h), len(b), n_bootstrap, probe, counts, extra
        )
    raise ValueError(f"unknown method {method!r}; use 'spectral' or 'probe'")
