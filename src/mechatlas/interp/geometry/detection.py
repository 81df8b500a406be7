"""Detection limits: which dimension an estimator could have seen, at a study's own n, d and signal strength.

"We found k" and "we could only see k" look the same in one number. ``detection_limits`` plants k = 1 … K
dimensions (``planted_activations``, the ``features`` structure) at the study's number of prompts per class
and width, with every planted direction separated by the signal strength measured on the study's data
(``signal_strength``: the difference in means along its own direction, in units of the pooled standard
deviation there), and runs the estimator on each. The recovered k per planted k is the estimator's
detection curve; the largest k up to which every planted k is recovered exactly is its detection limit at that signal
strength.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxtyping import Float
from torch import Tensor

from mechatlas.interp.geometry.dimensionality import Method, subspace_dimensionality
from mechatlas.interp.geometry.planted import planted_activations


def signal_strength(
    harmful: Float[Tensor, "n_harmful d_model"], harmless: Float[Tensor, "n_harmless d_model"]
) -> float:
    """d′ along the difference in means: |μ_h − μ_b| over the pooled s.d. of the projections on it."""
    h, b = harmful.double(), harmless.double()
    delta = h.mean(0) - b.mean(0)
    norm = float(delta.norm())
    if norm == 0.0:
        return 0.0
    unit = delta / norm
    ph, pb = h @ unit, b @ unit
    pooled = (
        (ph.var(unbiased=True) * (len(ph) - 1) + pb.var(unbiased=True) * (len(pb) - 1))
        / (len(ph) + len(pb) - 2)
    ).sqrt()
    return norm / float(pooled.clamp(min=1e-30))


def detection_limits(
    *,
    n_per_class: int,
    d_model: int,
    separation: float,
    methods: Sequence[Method] = ("spectral", "probe"),
    planted_ks: Sequence[int] = tuple(range(1, 9)),
    seed: int = 0,
    **estimator: Any,
) -> dict[str, Any]:
    """For each estimator and planted k, the k it recovers (point estimate, no bootstrap), at ``n_per_class``
    prompts per class, width ``d_model`` and per-direction separation ``separation``.

    ``estimator`` holds ``subspace_dimensionality``'s keyword arguments (permutations, ranks, probe
    settings) as the study uses them; ``n_bootstrap`` is forced to 1, as only the point estimate is read.
    """
    kwargs = {**estimator, "n_bootstrap": 1}
    curves: dict[str, list[dict[str, int]]] = {m: [] for m in methods}
    for k in planted_ks:
        if k + 4 > d_model:  # planted_activations needs room for its nuisance directions
            continue
        planted = planted_activations(
            k, d_model=d_model, n_per_class=n_per_class, separation=separation, seed=seed + k
        )
        for method in methods:
            found = subspace_dimensionality(
                planted.harmful, planted.harmless, method=method, seed=seed, **kwargs
            )
            curves[method].append({"planted_k": k, "recovered_k": int(found.k)})
    limits: dict[str, int] = {}
    for name, rows in curves.items():
        limit = 0
        for row in rows:  # in planted order: the limit is where exact recovery first stops
            if row["recovered_k"] != row["planted_k"]:
                break
            limit = row["planted_k"]
        limits[name] = limit
    return {
        "n_per_class": n_per_class,
        "d_model": d_model,
        "separation": separation,
        "curves": curves,
        "detection_limit": limits,
        "meaning": "planted k = 1..8 (features structure) at the study's n, d and measured d'; the recovered "
        "k of each estimator; detection_limit is the largest k such that every planted k up to it is recovered exactly",
    }
