# Shared set-up: validate the config before any job runs, and the target functions.
import json
from pathlib import Path

from mechatlas.config import ORGANISM, validate_params
from mechatlas.errors import ConfigError
from mechatlas.experiments import registry
from mechatlas.paths import FIGURE_SUFFIX

try:
    PARAMS = validate_params(config, "params.yaml (as loaded by Snakemake)", complete=True)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

MODELS = sorted(PARAMS.models)
LOGS = "logs"
# Every rule declares its software environment (used with --software-deployment-method conda).
ENV = "../envs/mechatlas.yaml"


def section(*keys):
    """A config section as a plain value, for `params:` (Snakemake reruns a job when it changes).

    Keys are sorted, so reordering keys in params.yaml changes nothing.
    """
    value = config
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return json.loads(json.dumps(value, sort_keys=True))


def refusal_settings(*keys):
    """The refusal_direction settings a job depends on (validated, defaults filled in), for `params`."""
    return PARAMS.refusal_direction.model_dump(mode="json", include=set(keys))


def dimensionality_settings(*keys):
    """The dimensionality settings a job depends on (validated, defaults filled in), for `params`."""
    return PARAMS.dimensionality.model_dump(mode="json", include=set(keys))


def organism_needed():
    return any(spec.source == ORGANISM for spec in PARAMS.models.values())


def model_checkpoint(wildcards):
    """The model's weights folder (`models.<key>.checkpoint`, which DVC tracks too): the trained organism,
    a planted organism's folder (made by rules/organism.smk), a local checkpoint or a hub snapshot; none for
    a hub id loaded from the hub itself."""
    spec = PARAMS.models[wildcards.model]
    folder = spec.weights
    if spec.source == ORGANISM or Path(folder).is_dir():
        return [folder]
    planted = Path(folder)
    if planted.parent == Path("data/models/planted") and planted.name in PARAMS.organism.planted:
        return [folder]
    return []


def model_prompts(wildcards):
    """The prompt file(s) a model's experiments read: the organism's generated set, or local files."""
    spec = PARAMS.models[wildcards.model]
    if spec.prompts == ORGANISM:  # the instructions carry each prompt's framing: the cluster of its intervals
        return ["data/organism/prompts.jsonl", "data/organism/instructions.jsonl"]
    files = [part.partition(":")[2] or part for part in spec.prompts.split("+")]
    return [f for f in files if Path(f).exists()]


def all_targets():
    """Everything `all` makes: the organism's behaviour, each registered experiment's record and figures
    per model (mechatlas.experiments.registry), and the site built from them."""
    targets = []
    if organism_needed():
        targets.append("data/results/organism/behaviour.json")
        # planted organisms descend from the organism: their verification records (rules/organism.smk)
        targets += [f"data/results/organism/planted/{name}.json" for name in sorted(PARAMS.organism.planted)]
    for model in MODELS:
        for experiment in registry.experiments(per_model=True):  # each has its rules/<name>.smk
            targets.append(f"data/results/{experiment.name}/{model}/metrics.json")
            targets += [f"reports/figures/{experiment.name}/{model}/{figure}{FIGURE_SUFFIX}" for figure in experiment.figures]
    targets.append(local("site/index.html"))  # the survey site (rules/site.smk), built from all of the above
    return targets
