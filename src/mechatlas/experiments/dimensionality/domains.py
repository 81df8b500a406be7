"""Per-domain refusal directions at one layer: how alike the harm domains' directions are.

``domain_geometry`` gives each harm domain with enough prompts its own difference-in-means direction and
compares them: cosines with a bootstrap CI (``_between_domain_cosine``: whole clusters of prompts resampled
within each domain, bias-corrected), a permutation null of the between-domain cosine (``_between_domain_null``:
domain labels permuted within framings, through the same estimator), leave-one-domain-out directions, per-domain spectral dimensionality, the overlap and principal angles
of the per-domain subspaces, and pseudo-domain directions (random partitions of the same sizes: the null
cone and the transfer null). Its directions are the cone check's generators (Wollschläger et al.,
arXiv 2502.17420). ``domains_by_layer`` runs it at every layer whose activations vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from mechatlas.config import DimensionalitySettings
from mechatlas.experiments.dimensionality.groups import MIN_PER_DOMAIN
from mechatlas.experiments.dimensionality.layers import _degenerate, _spectral_only
from mechatlas.experiments.dimensionality.resampling import permuted_within
from mechatlas.interp.geometry.controls import pseudo_domain_directions
from mechatlas.interp.geometry.dimensionality import subspace_dimensionality
from mechatlas.interp.geometry.projections import domain_directions, leave_one_out_directions
from mechatlas.interp.geometry.subspaces import cosine_matrix, principal_angles, subspace_overlap
from mechatlas.stats import basic_bootstrap, stratified_cluster_resamples

NULL_ALPHA = 0.05  # the between-domain cosine must fall below this quantile of its permutation null


def _mean_off_diagonal(directions: Float[Tensor, "m d_model"]) -> float:
    cosine = cosine_matrix(directions)
    return float(cosine[~np.eye(len(directions), dtype=bool)].mean())


def _mean_between(
    h: Tensor, b: Tensor, domain_index: np.ndarray, n_domains: int, rows_h: np.ndarray, rows_b: np.ndarray
) -> float:
    """The mean cosine between different domains' difference-in-means directions, from harmful rows
    ``rows_h`` (domain ``domain_index[rows_h]``) and harmless rows ``rows_b``."""
    index = torch.from_numpy(domain_index[rows_h])
    sums = torch.zeros(n_domains, h.shape[1], dtype=torch.float64).index_add_(
        0, index, h[torch.from_numpy(rows_h)]
    )
    counts = torch.bincount(index, minlength=n_domains).double()[:, None]
    return _mean_off_diagonal(sums / counts - b[torch.from_numpy(rows_b)].mean(0))


def _between_domain_cosine(
    harmful: Float[Tensor, "n_harmful d_model"],
    domain_index: np.ndarray,
    harmless: Float[Tensor, "n_harmless d_model"],
    clusters: tuple[Sequence[str], Sequence[str]] | None,
    *,
    n_domains: int,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """The mean cosine between different domains' difference-in-means directions, with its 95% CI.

    Each resample keeps every domain and the harmless set, and draws whole clusters (framings) within
    each of them (prompts one by one where there are no clusters), so the harmless mean varies too. A
    cosine of noisy directions is biased low, and each resample adds noise again, so the draws sit
    below the estimate (a percentile interval missed the organism's own estimate); the value is the
    bias-corrected estimate with its basic bootstrap interval (``mechatlas.stats.basic_bootstrap``).
    """
    h, b = harmful.double(), harmless.double()
    strata = [*domain_index.tolist(), *([n_domains] * len(b))]  # the harmless prompts are one more stratum
    units = None if clusters is None else [*clusters[0], *clusters[1]]

    def statistic(rows: np.ndarray) -> float:
        return _mean_between(
            h, b, domain_index, n_domains, rows[rows < len(h)], rows[rows >= len(h)] - len(h)
        )

    everyone = np.arange(len(h) + len(b))
    resamples = stratified_cluster_resamples(strata, units, n_resamples=n_bootstrap, seed=seed)
    summary = basic_bootstrap(
        statistic(everyone), [statistic(rows) for rows in resamples], bounds=(-1.0, 1.0)
    )
    summary["interval_unit"] = (
        "prompt within domain"
        if clusters is None
        else "cluster (organism framing or source set) within domain"
    )
    return summary


def _between_domain_null(
    harmful: Float[Tensor, "n_harmful d_model"],
    domain_index: np.ndarray,
    harmless: Float[Tensor, "n_harmless d_model"],
    clusters: Sequence[str] | None,
    *,
    n_domains: int,
    n_permutations: int,
    seed: int,
) -> dict[str, Any]:
    """A permutation null for the mean between-domain cosine: is it lower than domain labels that carry
    no direction of their own would give?

    The statistic is the plug-in mean cosine between different domains' difference-in-means directions
    (``_mean_between``), on the real labels and on labels permuted among the harmful prompts of each
    cluster (framing; all prompts where there are no clusters), so every permuted domain keeps its size,
    its framings and the harmless mean. Under "the domains share one direction" the labels are
    exchangeable within a framing and the real statistic is one more draw of the null; domains with
    directions of their own make it lower. ``threshold`` is the null's ``NULL_ALPHA`` quantile and
    ``p_value`` is (1 + #{null <= observed}) / (1 + n). ``share_relabelled`` is the mean share of
    prompts whose label a permutation changed (near 0 when framings each hold one domain, and the null
    then has nothing to test).
    """
    h, b = harmful.double(), harmless.double()
    rows_h, rows_b = np.arange(len(h)), np.arange(len(b))
    observed = _mean_between(h, b, domain_index, n_domains, rows_h, rows_b)
    rng = np.random.default_rng(seed)
    groups = None if clusters is None else np.asarray(clusters, dtype=str)
    draws, moved = [], []
    for _ in range(n_permutations):
        labels = permuted_within(domain_index, groups, rng)
        moved.append(float(np.mean(labels != domain_index)))
        draws.append(_mean_between(h, b, labels, n_domains, rows_h, rows_b))
    null = np.array(draws)
    return {
        "observed": observed,
        "estimator": "plug-in mean cosine between different domains' difference-in-means directions",
        "n_permutations": n_permutations,
        "alpha": NULL_ALPHA,
        "threshold": float(np.quantile(null, NULL_ALPHA)) if len(null) else None,
        "null_median": float(np.median(null)) if len(null) else None,
        "p_value": float((1 + np.sum(null <= observed + 1e-12)) / (1 + len(null))) if len(null) else None,
        "share_relabelled": float(np.mean(moved)) if moved else 0.0,
        "scheme": "domain labels permuted among the harmful prompts of each cluster"
        if clusters is not None
        else "domain labels permuted among all harmful prompts",
    }


def domain_geometry(
    harmful: Float[Tensor, "n_harmful d_model"],
    domains: Sequence[str],
    harmless: Float[Tensor, "n_harmless d_model"],
    settings: DimensionalitySettings,
    clusters: tuple[Sequence[str], Sequence[str]] | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Per-domain directions at one layer: cosines and their permutation null, principal angles, LODO,
    dimensionality.

    Only domains with at least ``MIN_PER_DOMAIN`` prompts take part; with fewer than two such domains
    there is nothing to compare and the summary says so. ``clusters`` (the harmful and the harmless
    prompts' clusters, in row order) make the cosine's interval resample whole clusters and its null
    permute the domain labels within them.
    """
    counts = pd.Series(list(domains)).value_counts()
    names = sorted(d for d, n in counts.items() if n >= MIN_PER_DOMAIN)
    if len(names) < 2:
        return {"too_few_domains": True, "domains": names, "n_harmful": counts.to_dict()}, {}
    keep = np.isin(np.asarray(domains), names)
    harmful = harmful[torch.from_numpy(keep)]
    domains = [d for d, k in zip(domains, keep, strict=True) if k]
    if clusters is not None:
        clusters = ([c for c, k in zip(clusters[0], keep, strict=True) if k], list(clusters[1]))
    harmless_mean = harmless.double().mean(dim=0)
    labels = np.asarray(domains)
    directions = domain_directions(harmful, domains, harmless_mean)
    lodo = leave_one_out_directions(harmful, domains, harmless_mean)
    pooled = harmful.double().mean(dim=0) - harmless_mean
    stacked = torch.stack([directions[d] for d in names])
    cosine = cosine_matrix(stacked)
    by_domain = {d: np.flatnonzero(labels == d) for d in names}
    between = _between_domain_cosine(
        harmful,
        np.searchsorted(names, labels),
        harmless,
        clusters,
        n_domains=len(names),
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
    )
    null_between = _between_domain_null(
        harmful,
        np.searchsorted(names, labels),
        harmless,
        None if clusters is None else clusters[0],
        n_domains=len(names),
        n_permutations=settings.n_permutations,
        seed=settings.seed,
    )

    subspaces, per_domain = {}, {}
    for d in names:
        rows = torch.from_numpy(by_domain[d])
        result = subspace_dimensionality(
            harmful[rows], harmless, method="spectral", seed=settings.seed, **_spectral_only(settings)
        )
        per_domain[d] = result.summary()
        rank = max(1, min(settings.domain_subspace_rank, result.fit.patterns.shape[0]))  # type: ignore[union-attr]
        subspaces[d] = result.fit.patterns[:rank]  # type: ignore[union-attr]
    overlap = np.array([[subspace_overlap(subspaces[a], subspaces[b]) for b in names] for a in names])
    first_angle = np.array(
        [[float(np.degrees(principal_angles(subspaces[a], subspaces[b])[0])) for b in names] for a in names]
    )
    summary = {
        "domains": names,
        "n_harmful": {d: len(by_domain[d]) for d in names},
        "n_harmless": len(harmless),
        "cosine": cosine.tolist(),
        "mean_off_diagonal_cosine": between,
        "between_domain_null": null_between,
        "cosine_with_pooled": {
            d: float(torch.nn.functional.cosine_similarity(directions[d], pooled, dim=0)) for d in names
        },
        "lodo_cosine_with_own": {
            d: float(torch.nn.functional.cosine_similarity(lodo[d], directions[d], dim=0)) for d in names
        },
        "subspace_rank": settings.domain_subspace_rank,
        "subspace_overlap": overlap.tolist(),
        "random_subspace_overlap": settings.domain_subspace_rank / harmful.shape[1],
        "first_principal_angle_deg": first_angle.tolist(),
        "dimensionality": per_domain,
    }
    null = pseudo_domain_directions(
        harmful,
        [len(by_domain[d]) for d in names],
        harmless_mean,
        n_draws=settings.null_cones,
        seed=settings.seed,
    )
    summary["null_cone"] = {
        "n_draws": settings.null_cones,
        "meaning": "difference-in-means directions of random partitions of the harmful prompts into groups "
        "of the real domains' sizes",
    }
    tensors = {"domain": stacked, "lodo": torch.stack([lodo[d] for d in names]), "null_domain": null}
    return summary, tensors


def domains_by_layer(
    harmful: Float[Tensor, "n_harmful layer d_model"],
    domains: Sequence[str],
    harmless: Float[Tensor, "n_harmless layer d_model"],
    settings: DimensionalitySettings,
    clusters: tuple[Sequence[str], Sequence[str]] | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``domain_geometry`` at every layer with varying activations, by layer; and the tensors per layer:
    the pooled difference in means (``pooled.layerL``) and the per-domain and leave-one-domain-out
    directions (``domain.layerL``, ``lodo.layerL``)."""
    summaries: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for layer in range(harmful.shape[1]):
        if _degenerate(torch.cat([harmful[:, layer], harmless[:, layer]])):
            summaries[str(layer)] = {"degenerate": True}
            continue
        summary, domain_tensors = domain_geometry(
            harmful[:, layer], domains, harmless[:, layer], settings, clusters
        )
        summaries[str(layer)] = summary
        tensors[f"pooled.layer{layer}"] = harmful[:, layer].double().mean(0) - harmless[
            :, layer
        ].double().mean(0)
        tensors |= {f"{key}.layer{layer}": value.contiguous() for key, value in domain_tensors.items()}
    return summaries, tensors
