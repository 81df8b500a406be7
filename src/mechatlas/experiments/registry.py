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
from dataclasses import dataclass, field
from typing import Any

from mechatlas.errors import ConfigError

#: A headline maker: a record's ``metrics`` to Markdown lines (escaped).
Headline = Callable[[Mapping[str, Any]], list[str]]

#: A figure-notes maker: a record's ``metrics`` to ``{figure stem: ("replace" | "note", text)}``.
FigureNotes = Callable[[Mapping[str, Any]], dict[str, tuple[str, str]]]

#: A findings maker: a record's ``metrics`` to two to four plain sentences (not Markdown) of what was found.
Findings = Callable[[Mapping[str, Any]], list[str]]

#: A validation maker: a planted organism's verification record (its ``metrics``) and the experiment's record
#: on that organism (its ``metrics``) to one row per estimator: ``estimator``, ``measures``, ``planted``,
#: ``recovered``, ``interval``, ``result`` (one of ``VALIDATION_RESULTS``) and ``note``.
Validation = Callable[[Mapping[str, Any], Mapping[str, Any]], list[dict[str, Any]]]

#: What a validation row says of an estimator on a planted organism.
RECOVERED, MISSED, NOT_MEASURED = "recovered", "missed", "not measured"
VALIDATION_RESULTS = (RECOVERED, MISSED, NOT_MEASURED)


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
    findings: str | None = None
    figure_notes: str | None = None
    validation: str | None = None
    per_model: bool = True
    example_metric: str | None = None
    example_figure: str | None = None
    captions: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def headline_function(self) -> Headline | None:
        """The headline maker, imported now; raises ``ConfigError`` if the dotted path does not resolve."""
        return self._function(self.headline, "headline")

    def findings_function(self) -> Findings | None:
        """The findings maker (a record's metrics to plain sentences), imported now, or None."""
        return self._function(self.findings, "findings")

    def figure_notes_function(self) -> FigureNotes | None:
        """What the record says about its figures (which have nothing to draw), imported now, or None."""
        return self._function(self.figure_notes, "figure notes")

    def validation_function(self) -> Validation | None:
        """The validation maker (planted answer against what the experiment recovered), imported now, or None."""
        return self._function(self.validation, "validation")

    def _function(self, dotted: str | None, what: str) -> Any:
        if dotted is None:
            return None
        module_name, _, function_name = dotted.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError, ValueError):
            raise ConfigError(
                f"experiment `{self.name}`: its {what} `{dotted}` is not an importable "
                "`package.module:function`; fix it in mechatlas.experiments.registry"
            ) from None
        return function


def _claims(paper: str, *claims: str) -> tuple[ClaimRef, ...]:
    return tuple(ClaimRef(paper, claim) for claim in claims)


ORGANISM = Experiment(
    name="organism",
    title="The model organism",
    summary="How the built-in organism behaves on held-out prompts, which every experiment on it starts from.",
    headline="mechatlas.organism.headline:organism_headline",
    findings="mechatlas.organism.headline:organism_findings",
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
        "refusal-direction",
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
    findings="mechatlas.experiments.refusal_direction.headline:refusal_direction_findings",
    example_metric="refusal_rate.substring.ablation.harmful",
    example_figure="refusal_rates",
    captions={
        "candidate_scores": (
            "Candidate directions by layer and prompt position",
            "Each candidate's bypass, induce and KL scores; the selected one is marked. Look for the "
            "candidate that lowers harmful refusal most while passing the KL filter.",
        ),
        "refusal_rates": (
            "Refusal under each intervention, with 95% Wilson intervals",
            "Compare each intervention with its random-direction control beside it: the gap is the "
            "direction's effect.",
        ),
        "refusal_rates_by_domain": (
            "Refusal per harm domain under each intervention",
            "A handful of prompts per domain, so the intervals are wide: where to look, not a finding.",
        ),
    },
)

DIMENSIONALITY = Experiment(
    name="dimensionality",
    title="Dimensionality of refusal",
    summary=(
        "How many dimensions refusal occupies, layer by layer and per harm domain, by spectral, probe and "
        "causal estimators."
    ),
    methods=(
        "refusal-direction",
        "harmfulness-direction",
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
        "optimised_bypass",
    ),
    claims=(
        *_claims(
            "mechatlas2026refusalgeometry",
            "refusal-multidimensional",
            "dimensionality-varies-with-depth",
            "domain-dependent-directions",
            "harmfulness-refusal-loosely-linked",
        ),
        *_claims(
            "wollschlager2025geometry", "refusal-concept-cones", "optimised-directions-fewer-side-effects"
        ),
        *_claims("zhao2025harmfulness", "harmfulness-distinct-from-refusal"),
    ),
    headline="mechatlas.experiments.dimensionality.headline:dimensionality_headline",
    captions={
        "dimensionality_by_layer": (
            "Estimated dimension of refusal per layer, by estimator, with 95% intervals",
            "Spectral and probe counts sit far above the causal count of the same layer.",
        ),
        "spectra": (
            "Eigenvalue spectra against the permutation null",
            "Count the eigenvalues above the null's line: that is the spectral dimension.",
        ),
        "inlp_accuracy": (
            "Probe accuracy over rounds of iterative nullspace projection",
            "The round where accuracy falls to the chance line is the probe dimension.",
        ),
        "causal_sweep": (
            "Harmful refusal as the top k directions are ablated, against k random directions",
            "Where the sweep stops after one direction, one ablated direction already took refusal "
            "below the threshold.",
        ),
        "domain_cosines": (
            "Cosines between the harm domains' directions",
            "Values near one everywhere mean the domains share one direction.",
        ),
        "domain_subspace_overlap": (
            "Overlap of the domains' subspaces",
            "Compare with the overlap of random subspaces of the same rank.",
        ),
        "domain_dimensionality": (
            "Spectral dimension per harm domain",
            "Differences between domains beyond their intervals would mean domain-specific geometry.",
        ),
        "transfer_matrix": (
            "Refusal in each domain after ablating each domain's direction",
            "A strong diagonal would mean each domain has its own direction; a uniform matrix, one shared "
            "mechanism.",
        ),
        "cone": (
            "Concept-cone test: refusal after adding domain directions and their combinations",
            "Every generator and combination inducing refusal, with an effective rank near one, is a cone "
            "that is close to a single ray.",
        ),
        "harmfulness_vs_refusal": (
            "Harmfulness direction versus refusal direction",
            "Compare what adding or ablating each direction does to refusal.",
        ),
        "detection_limits": (
            "Detection limits: the dimension each estimator recovers from a planted k = 1 to 8",
            "Where a curve leaves the diagonal, that estimator could not have seen a larger k at this n and d; "
            "a count found on the model beyond that point cannot be told from the estimator's limit.",
        ),
        "optimised_bypass": (
            "Harmful refusal as an optimised subspace of dimension m is ablated, with and without the read-out "
            "constraint, against a random subspace",
            "The first m whose interval lies below the threshold line is the smallest bypassing subspace; the "
            "unconstrained search reaching it at m = 1 is the read-out being removed, not the mechanism.",
        ),
    },
    findings="mechatlas.experiments.dimensionality.headline:dimensionality_findings",
    validation="mechatlas.experiments.dimensionality.validation:validation_rows",
    figure_notes="mechatlas.experiments.dimensionality.headline:dimensionality_figure_notes",
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
