"""The experiments of the study, as plain data: what the site, the rules and the figures stages agree on.

One frozen ``Experiment`` per experiment says what readers call it, what it is about, which methods of
the survey taxonomy it uses, which figures it draws, which paper claims it gives verdicts on, and where
its headline (the few numbers shown first on its result page) is made. The site and the Snakemake rules
read this module instead of naming experiments themselves, so adding an experiment means adding an
entry here, the experiment's own package and its rule file.

Nothing here imports an experiment package: the headline is a dotted path
(``"package.module:function"``) that ``Experiment.headline_function`` imports on first use.

>>> get("refusal_direction").title
'Refusal direction'
>>> get("dimensionality").figures[0]
'dimensionality_by_layer'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mechatlas.errors import ConfigError

#: A headline maker: a record's ``metrics`` to Markdown lines (escaped).
Headline = Callable[[Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class ClaimRef:
    """A paper claim an experiment gives a verdict on: the paper's bibkey and the claim's id."""

    paper: str
    claim: str


@dataclass(frozen=True)
class Experiment:
    """One experiment of the study.

    ``name`` is its folder under ``data/results/`` and ``reports/figures/``; ``figures`` are the stems of
    the PNG files its figures stage writes per model (in the order it draws them); ``headline`` is
    ``"package.module:function"`` or None. ``per_model`` is False for a record with no model axis (the
    organism's behaviour, ``data/results/organism/behaviour.json``). ``example_metric`` (a dotted path
    into the record's ``metrics``) and ``example_figure`` (one of ``figures``) are what the site's help
    texts and post stubs show as examples of quoting a number and embedding a figure.
    """

    name: str
    title: str
    summary: str
    methods: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    claims: tuple[ClaimRef, ...] = ()
    headline: str | None = None
    per_model: bool = True
    example_metric: str | None = None
    example_figure: str | None = None

    def headline_function(self) -> Headline | None:
        """The headline maker, imported now; raises ``ConfigError`` if the dotted path does not resolve."""
        if self.headline is None:
            return None
        module_name, _, function_name = self.headline.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError, ValueError):
            raise ConfigError(
                f"experiment `{self.name}`: its headline `{self.headline}` is not an importable "
                "`package.module:function`; fix it in mechatlas.experiments.registry"
            ) from None
        return function  # type: ignore[no-any-return]


def _claims(paper: str, *claims: str) -> tuple[ClaimRef, ...]:
    return tuple(ClaimRef(paper, claim) for claim in claims)


ORGANISM = Experiment(
    name="organism",
    title="The model organism",
    summary="How the built-in organism behaves on held-out prompts, which every experiment on it starts from.",
    headline="mechatlas.organism.headline:organism_headline",
    per_model=False,
)

REFUSAL_DIRECTION = Experiment(
    name="refusal_direction",
    title="Refusal direction",
    summary=(
        "Arditi et al. 2024: a single difference-in-means direction whose ablation bypasses refusal and "
        "whose addition induces it."
    ),
    methods=(
        "difference-in-means",
        "directional-ablation",
        "activation-addition",
        "weight-orthogonalization",
    ),
    figures=("candidate_scores", "refusal_rates", "refusal_rates_by_domain"),
    claims=_claims(
        "arditi2024refusal",
        "ablation-bypasses-refusal",
        "addition-induces-refusal",
        "orthogonalization-equals-ablation",
        "minimal-capability-cost",
        "single-direction",
    ),
    headline="mechatlas.experiments.refusal_direction.headline:refusal_direction_headline",
    example_metric="refusal_rate.substring.ablation.harmful",
    example_figure="refusal_rates",
)

DIMENSIONALITY = Experiment(
    name="dimensionality",
    title="Dimensionality of refusal",
    summary=(
        "How many dimensions refusal occupies, layer by layer and per harm domain, by spectral, probe and "
        "causal estimators."
    ),
    methods=(
        "spectral-dimensionality",
        "inlp",
        "linear-probing",
        "difference-in-means",
        "directional-ablation",
        "activation-addition",
        "concept-cones",
        "causal-ablation",
    ),
    figures=(
        "dimensionality_by_layer",
        "spectra",
        "inlp_accuracy",
        "causal_sweep",
        "domain_cosines",
        "domain_subspace_overlap",
        "domain_dimensionality",
        "transfer_matrix",
        "cone",
        "harmfulness_vs_refusal",
        "detection_limits",
    ),
    claims=(
        *_claims(
            "mechatlas2026refusalgeometry",
            "refusal-multidimensional",
            "dimensionality-varies-with-depth",
            "domain-dependent-directions",
            "harmfulness-refusal-loosely-linked",
        ),
        *_claims("wollschlager2025geometry", "refusal-concept-cones"),
        *_claims("zhao2025harmfulness", "harmfulness-distinct-from-refusal"),
    ),
    headline="mechatlas.experiments.dimensionality.headline:dimensionality_headline",
)

_REGISTRY: dict[str, Experiment] = {e.name: e for e in (ORGANISM, REFUSAL_DIRECTION, DIMENSIONALITY)}


def register(experiment: Experiment, *, replace: bool = False) -> Experiment:
    """Add an experiment (for tests and plugins); an existing name is an error unless ``replace``."""
    if experiment.name in _REGISTRY and not replace:
        raise ConfigError(
            f"experiment `{experiment.name}` is already registered; pass replace=True to swap it"
        )
    _REGISTRY[experiment.name] = experiment
    return experiment


def unregister(name: str) -> None:
    """Remove an experiment (a test's toy experiment, when the test ends)."""
    _REGISTRY.pop(name, None)


def experiments(*, per_model: bool | None = None) -> list[Experiment]:
    """Every registered experiment in registration order; ``per_model`` keeps only those with (or without)
    a model axis."""
    return [e for e in _REGISTRY.values() if per_model is None or e.per_model == per_model]


def example() -> Experiment | None:
    """The first per-model experiment that names an example metric (for help texts), or None."""
    return next((e for e in experiments(per_model=True) if e.example_metric), None)


def find(name: str) -> Experiment | None:
    """The experiment called ``name``, or None."""
    return _REGISTRY.get(name)


def get(name: str) -> Experiment:
    """The experiment called ``name``; raises ``ConfigError`` naming the known ones otherwise."""
    found = _REGISTRY.get(name)
    if found is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"unknown experiment `{name}`: the registered experiments are {known} "
            "(add one in mechatlas.experiments.registry)"
        )
    return found
