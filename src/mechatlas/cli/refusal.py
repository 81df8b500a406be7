"""``mechatlas refusal``: the refusal-direction replication (Arditi et al. 2024, arXiv 2406.11717), stage by stage.

Each command runs one stage on one model: a name from params.yaml's ``models``, a local checkpoint
folder, or a Hugging Face hub id. Outputs go where the Snakemake pipeline puts them, under the model's
name (the folder name of a path; ``org--name`` for a hub id) unless an option says otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mechatlas import paths
from mechatlas.cli.lazy import LazyModule
from mechatlas.cli.options import OverwriteOption, ParamsOption, echo_verdicts, output_path
from mechatlas.config import Params, load_params

common: Any = LazyModule("mechatlas.experiments.common")
EXPERIMENT = "refusal_direction"
stages: Any = LazyModule(
    "mechatlas.experiments.refusal_direction.stages"
)  # loads torch only when a command runs


refusal_figures: Any = LazyModule(
    "mechatlas.experiments.refusal_direction.figures"
)  # loads matplotlib only when it draws


app = typer.Typer(
    help="Replicate 'Refusal in Language Models Is Mediated by a Single Direction' on any chat model: "
    "activations -> select -> orthogonalize -> evaluate -> figures.",
    no_args_is_help=True,
)


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="A model name from params.yaml (`organism`), a checkpoint folder, or a hub id (`Qwen/Qwen2.5-0.5B-Instruct`).",
    ),
]


PromptsOption = Annotated[
    str | None,
    typer.Option(
        help="Prompt set for a model not in params.yaml: `organism`, a JSONL file, or `<set>:<file>` joined with `+` "
        "(default: the model's `prompts` entry, else `organism`)."
    ),
]


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Hide progress bars.")]


def _resolve(params: Path, model: str, prompts: str | None) -> tuple[Params, str]:
    """Params with the model in ``models`` (added if it is a path or hub id), and the model's name."""
    loaded, name, _ = common.resolve_model(load_params(params), model, prompts)
    return loaded, name


@app.command("activations")
def activations(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    prompts: PromptsOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder to write (default data/activations/<model>).")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Residual-stream activations at every post-instruction position and layer, streamed to .npy files,
    with float64 class means of the train prompts."""
    loaded, name = _resolve(params, model, prompts)
    meta = stages.extract_activations(
        loaded, name, output_path(out, paths.activations_dir(name), overwrite), progress=not quiet
    )
    typer.echo(json.dumps({"positions": meta["position_tokens"], "counts": meta["counts"]}))


@app.command("select")
def select(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    prompts: PromptsOption = None,
    activations: Annotated[Path | None, typer.Option(help="Folder made by `activations`.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default data/results/refusal_direction/<model>).")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Score every (position, layer) difference-in-means candidate (bypass, induce, KL) and select one."""
    loaded, name = _resolve(params, model, prompts)
    info = stages.select(
        loaded,
        name,
        activations or paths.activations_dir(name),
        output_path(out, paths.results_dir(EXPERIMENT, name), overwrite, "direction.json"),
        progress=not quiet,
    )
    typer.echo(
        json.dumps(
            {k: info[k] for k in ("position", "token", "layer", "bypass_score", "induce_score", "kl_score")}
        )
    )


@app.command("orthogonalize")
def orthogonalize(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    prompts: PromptsOption = None,
    activations: Annotated[
        Path | None, typer.Option(help="Folder made by `activations` (its val prompts).")
    ] = None,
    results: Annotated[
        Path | None, typer.Option(help="Results folder holding direction.safetensors.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Checkpoint folder (default data/models/refusal_orthogonalized/<model>)."),
    ] = None,
) -> None:
    """Write a Hugging Face checkpoint with the direction orthogonalized out of the weights, and check that it
    equals hook ablation (max |Δlogit|, float32)."""
    loaded, name = _resolve(params, model, prompts)
    report = stages.orthogonalize(
        loaded,
        name,
        results or paths.results_dir(EXPERIMENT, name),
        activations or paths.activations_dir(name),
        output_path(out, paths.orthogonalized_dir(name), overwrite),
    )
    typer.echo(
        json.dumps({k: report.get(k) for k in ("supported", "max_abs_logit_diff", "checkpoint", "reason")})
    )


@app.command("evaluate")
def evaluate(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    prompts: PromptsOption = None,
    results: Annotated[
        Path | None, typer.Option(help="Results folder (default data/results/refusal_direction/<model>).")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Greedy generation on harmful and harmless test prompts under baseline, ablation, addition/subtraction and
    random-direction controls; refusal rates, capability cost, verdicts; writes metrics.json."""
    loaded, name = _resolve(params, model, prompts)
    res = output_path(results, paths.results_dir(EXPERIMENT, name), overwrite, "metrics.json")
    echo_verdicts(stages.evaluate(loaded, name, res, progress=not quiet))


@app.command("figures")
def figures(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: Annotated[
        Path | None, typer.Option(help="Results folder (default data/results/refusal_direction/<model>).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Figure folder (default reports/figures/refusal_direction/<model>).")
    ] = None,
) -> None:
    """Heatmaps of the candidate scores and refusal-rate bars with the random control (PNG)."""
    name = _resolve(params, model, None)[1]
    for path in refusal_figures.figures(
        results or paths.results_dir(EXPERIMENT, name),
        output_path(out, paths.figures_dir(EXPERIMENT, name), overwrite),
    ):
        typer.echo(f"wrote {path}")


@app.command("all")
def run_all(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    prompts: PromptsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Every stage in order, with default locations."""
    loaded, name = _resolve(params, model, prompts)
    act = output_path(None, paths.activations_dir(name), overwrite)
    res = output_path(None, paths.results_dir(EXPERIMENT, name), overwrite)
    stages.extract_activations(loaded, name, act, progress=not quiet)
    stages.select(loaded, name, act, res, progress=not quiet)
    stages.orthogonalize(loaded, name, res, act, paths.orthogonalized_dir(name))
    result = stages.evaluate(loaded, name, res, progress=not quiet)
    refusal_figures.figures(res, paths.figures_dir(EXPERIMENT, name))
    echo_verdicts(result)
