"""``mechatlas dimensionality``: how many dimensions refusal occupies, per layer and per harm domain.

Each command runs one stage on one model (a name from params.yaml's ``models``, a checkpoint folder or a
hub id, as for ``mechatlas refusal``). The stages read the refusal-direction stage's outputs, so run
``mechatlas refusal activations`` and ``mechatlas refusal select`` for the model first.
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

EXPERIMENT = "dimensionality"
# These load torch; they are imported when a command runs, not for `--help`.
stages: Any = LazyModule("mechatlas.experiments.dimensionality.stages")
common: Any = LazyModule("mechatlas.experiments.common")
artefacts: Any = LazyModule("mechatlas.experiments.dimensionality.artefacts")


app = typer.Typer(
    help="Dimensionality of refusal per layer and harm domain: instruction-activations -> geometry -> causal -> optimised "
    "-> metrics -> figures. Reads the refusal-direction stage's activations and selected direction.",
    no_args_is_help=True,
)


ModelOption = Annotated[
    str,
    typer.Option("--model", "-m", help="A model name from params.yaml, a checkpoint folder, or a hub id."),
]


ResultsOption = Annotated[
    Path | None, typer.Option(help="Results folder (default data/results/dimensionality/<model>).")
]


ThreadsOption = Annotated[
    int | None, typer.Option(help="CPU threads torch may use (default: torch's choice).")
]


def _resolve(params: Path, model: str) -> tuple[Params, str]:
    loaded, name, _ = common.resolve_model(load_params(params), model)
    return loaded, name


def _geometry(loaded: Params, name: str, out: Path) -> dict[str, Any]:
    """The geometry stage on the refusal stage's outputs for ``name`` and the instruction activations in ``out``."""
    return stages.geometry_stage(
        loaded,
        name,
        paths.activations_dir(name),
        paths.results_dir("refusal_direction", name),
        out / artefacts.INSTRUCTION_FILE,
        out,
    )


@app.command("instruction-activations")
def instruction_activations(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: ResultsOption = None,
) -> None:
    """Residual stream at the last token of the user's text (every layer) for the prompts the refusal stage saved."""
    loaded, name = _resolve(params, model)
    out = output_path(results, paths.results_dir(EXPERIMENT, name), overwrite, artefacts.INSTRUCTION_FILE)
    info = stages.instruction_activations(
        loaded, name, paths.activations_dir(name), out / artefacts.INSTRUCTION_FILE
    )
    typer.echo(json.dumps(info))


@app.command("geometry")
def geometry(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: ResultsOption = None,
) -> None:
    """Spectral and INLP dimensionality per layer with bootstrap CIs; domain directions, angles and transfer
    geometry; harmfulness versus refusal directions. Activations only, no model."""
    loaded, name = _resolve(params, model)
    out = output_path(results, paths.results_dir(EXPERIMENT, name), overwrite, "geometry.json")
    result = _geometry(loaded, name, out)
    typer.echo(
        json.dumps(
            [
                {k: r.get(k) for k in ("layer", "position", "estimator", "k", "ci95")}
                for r in result["dimensionality"]
            ]
        )
    )


@app.command("causal")
def causal(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: ResultsOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Ablate top-k subspaces against random ones, the cone check, cross-domain transfer, leave-one-domain-out
    and harmfulness-versus-refusal steering, on held-out prompts."""
    loaded, name = _resolve(params, model)
    out = output_path(results, paths.results_dir(EXPERIMENT, name), overwrite, "causal.json")
    summary = stages.causal_stage(loaded, name, out, out, threads=threads)
    typer.echo(
        json.dumps(
            {
                layer: s.get("spectral", {}).get("k")
                for layer, s in summary["sweeps"].items()
                if not s.get("degenerate")
            }
        )
    )


@app.command("optimised")
def optimised(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: ResultsOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Gradient-optimised directions on held-out prompts: RDO against the difference in means, refusal cones
    against a pseudo-label null, the smallest bypassing subspace with and without the read-out constraint,
    and multi-direction ablation."""
    from mechatlas.experiments.dimensionality.optimised import optimised_stage

    loaded, name = _resolve(params, model)
    out = output_path(results, paths.results_dir(EXPERIMENT, name), overwrite, "optimised.json")
    record = optimised_stage(
        loaded, name, paths.results_dir("refusal_direction", name), out, out, threads=threads
    )
    typer.echo(
        json.dumps(
            {
                "largest_cone_m": record["cones"]["largest_m_real"],
                "largest_null_cone_m": record["cones"]["largest_m_null"],
                "smallest_bypass_m": {
                    kind: record["bypass"][f"smallest_m_{kind}"] for kind in ("unconstrained", "constrained")
                },
            }
        )
    )


@app.command("metrics")
def metrics(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: ResultsOption = None,
) -> None:
    """The per-layer table, domain table and metrics.json with verdicts derived by the documented rules."""
    loaded, name = _resolve(params, model)
    out = output_path(results, paths.results_dir(EXPERIMENT, name), overwrite, "metrics.json")
    echo_verdicts(stages.metrics_stage(loaded, name, out, out))


@app.command("figures")
def figures(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    results: ResultsOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Figure folder (default reports/figures/dimensionality/<model>).")
    ] = None,
) -> None:
    """Dimensionality by layer, spectra, INLP curves, causal sweeps, domain heatmaps, transfer, cone, Zhao (PNG)."""
    from mechatlas.experiments.dimensionality.figures import figures as draw

    name = _resolve(params, model)[1]
    for path in draw(
        results or paths.results_dir(EXPERIMENT, name),
        output_path(out, paths.figures_dir(EXPERIMENT, name), overwrite),
    ):
        typer.echo(f"wrote {path}")


@app.command("all")
def run_all(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    model: ModelOption = "organism",
    threads: ThreadsOption = None,
) -> None:
    """Every stage in order, with default locations (the refusal-direction outputs must exist)."""
    from mechatlas.experiments.dimensionality.figures import figures as draw
    from mechatlas.experiments.dimensionality.optimised import optimised_stage

    loaded, name = _resolve(params, model)
    out = output_path(None, paths.results_dir(EXPERIMENT, name), overwrite, "metrics.json")
    stages.instruction_activations(
        loaded, name, paths.activations_dir(name), out / artefacts.INSTRUCTION_FILE, threads=threads
    )
    _geometry(loaded, name, out)
    stages.causal_stage(loaded, name, out, out, threads=threads)
    optimised_stage(loaded, name, paths.results_dir("refusal_direction", name), out, out, threads=threads)
    result = stages.metrics_stage(loaded, name, out, out)
    draw(out, paths.figures_dir(EXPERIMENT, name))
    echo_verdicts(result)
