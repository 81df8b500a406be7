"""Where every artefact lives, relative to the repository root.

One module owns the layout on disk, so the library's stages, the CLI, the site and the Snakemake
rules (``workflow/rules/common.smk``) agree on it. Functions take the experiment and model names and
return ``Path`` objects; a rule passes ``"{model}"`` to get a wildcard pattern instead:

>>> results_dir("refusal_direction", "organism").as_posix()
'data/results/refusal_direction/organism'
>>> str(metrics_file("dimensionality", "{model}"))
'data/results/dimensionality/{model}/metrics.json'

Nothing under ``mechatlas.interp`` imports this module: the library takes paths as arguments.
"""

from __future__ import annotations

from pathlib import Path

# --- sources, in git -------------------------------------------------------------------------------

PARAMS = Path("params.yaml")
PARAMS_SCHEMA = Path("workflow/schemas/params.schema.yaml")
LITERATURE = Path("literature")
PROMPTS = Path("data/prompts")
HANDWRITTEN_PROMPTS = PROMPTS / "handwritten.jsonl"
DOCS = Path("reports")  # the site's sources: hand-written pages and posts, plus generated ones
POSTS = DOCS / "blog" / "posts"
MKDOCS_CONFIG = Path("mkdocs.yml")

# --- the organism ----------------------------------------------------------------------------------

ORGANISM_DATA = Path("data/organism")
ORGANISM_VOCABULARY = ORGANISM_DATA / "vocabulary.yaml"  # tasks, framings and replies (a source, in git)
ORGANISM_INSTRUCTIONS = ORGANISM_DATA / "instructions.jsonl"  # every generated instruction, with its reply
ORGANISM_PROMPTS = ORGANISM_DATA / "prompts.jsonl"  # the same, as prompt records
MODELS = Path("data/models")
ORGANISM_DIR = MODELS / "organism"  # the trained checkpoint (Hugging Face format)

# --- generated artefacts, tracked by DVC -----------------------------------------------------------

ACTIVATIONS = Path("data/activations")
RESULTS = Path("data/results")
FIGURES = DOCS / "figures"
GENERATED = DOCS / "generated"
BENCH = DOCS / "bench"
SITE = Path("site")
METRICS = "metrics.json"  # the result record's file name in every results folder
ORGANISM_BEHAVIOUR = RESULTS / "organism" / "behaviour.json"
PLANTED_MODELS = MODELS / "planted"  # planted organisms, one Hugging Face checkpoint folder each
PLANTED_RESULTS = RESULTS / "organism" / "planted"  # their verification records, one file each


def planted_dir(name: str) -> Path:
    """The checkpoint folder of planted organism ``name`` (``organism.planted`` in params.yaml)."""
    return PLANTED_MODELS / name


def planted_record(name: str) -> Path:
    """The verification record of planted organism ``name``: its planted property, measured."""
    return PLANTED_RESULTS / f"{name}.json"


def activations_dir(model: str) -> Path:
    """The activation store of ``model``'s refusal-direction prompts (``mechatlas.interp.activations``)."""
    return ACTIVATIONS / model


def results_dir(experiment: str, model: str) -> Path:
    """Everything one experiment writes about one model."""
    return RESULTS / experiment / model


def metrics_file(experiment: str, model: str) -> Path:
    """The result record (``mechatlas.records``) of one experiment on one model."""
    return results_dir(experiment, model) / METRICS


def figures_dir(experiment: str, model: str) -> Path:
    """The figures one experiment draws for one model, with their README."""
    return FIGURES / experiment / model


FIGURE_SUFFIX = ".svg"  # figures are vector graphics (deterministic SVG: see experiments.common.save_figure)


def figure_files(experiment: str, model: str, names: tuple[str, ...]) -> list[Path]:
    """The file of each named figure."""
    return [figures_dir(experiment, model) / f"{name}{FIGURE_SUFFIX}" for name in names]


def orthogonalized_dir(model: str) -> Path:
    """The weight-orthogonalized checkpoint derived from ``model``."""
    return MODELS / "refusal_orthogonalized" / model
