"""``mechatlas organism``: generate the organism's data, train it, and measure its held-out behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mechatlas import paths
from mechatlas.cli.options import OverwriteOption, ParamsOption, fresh
from mechatlas.config import load_params
from mechatlas.organism import stages

app = typer.Typer(help="The built-in model organism (a small Qwen2-family chat model).", no_args_is_help=True)


DataOption = Annotated[Path, typer.Option(help="Instructions made by `organism data`.")]


@app.command("data")
def data(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    out: Annotated[
        Path, typer.Option(help="Instructions with replies (JSONL).")
    ] = paths.ORGANISM_INSTRUCTIONS,
    prompts: Annotated[
        Path, typer.Option(help="The same prompts as schema records (JSONL).")
    ] = paths.ORGANISM_PROMPTS,
    vocabulary: Annotated[
        Path, typer.Option(help="Tasks, framings and replies to build them from (YAML).")
    ] = paths.ORGANISM_VOCABULARY,
) -> None:
    """Generate the synthetic instructions (harmful, harmless, alarming-but-harmless) with their splits."""
    n = stages.write_instructions(
        load_params(params), fresh(out, overwrite), fresh(prompts, overwrite), vocabulary
    )
    typer.echo(f"wrote {n} instructions to {out} and {prompts}")


@app.command("train")
def train(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    data: DataOption = paths.ORGANISM_INSTRUCTIONS,
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write.")] = paths.ORGANISM_DIR,
) -> None:
    """Train the organism on CPU (progress bar shows steps and loss) and save a Hugging Face checkpoint."""
    summary = stages.train(load_params(params), data, fresh(out, overwrite))
    typer.echo(f"trained {summary['parameters']} parameters in {summary['steps']} steps; saved to {out}")


@app.command("behaviour")
def behaviour(
    params: ParamsOption = Path("params.yaml"),
    overwrite: OverwriteOption = False,
    data: DataOption = paths.ORGANISM_INSTRUCTIONS,
    model: Annotated[Path, typer.Option(help="Checkpoint folder of the organism.")] = paths.ORGANISM_DIR,
    out: Annotated[Path, typer.Option(help="Metrics file to write.")] = paths.ORGANISM_BEHAVIOUR,
) -> None:
    """Greedy replies on held-out prompts; refusal rates with 95% CIs per kind of prompt and domain."""
    result = stages.behaviour(load_params(params), data, model, fresh(out, overwrite))
    typer.echo(json.dumps({k: v["value"] for k, v in result["refusal_rate"].items()}))


@app.command("plant")
def plant(
    name: Annotated[str, typer.Argument(help="A planted organism named in `organism.planted`.")],
    params: ParamsOption = Path("params.yaml"),
    data: DataOption = paths.ORGANISM_INSTRUCTIONS,
    base: Annotated[Path, typer.Option(help="The trained default organism.")] = paths.ORGANISM_DIR,
    out: Annotated[Path | None, typer.Option(help="Checkpoint folder to write.")] = None,
) -> None:
    """Fine-tune the default organism with an interventional objective so its refusal has a known cause."""
    target = out or paths.planted_dir(name)
    summary = stages.plant(load_params(params), name, data, base, target)
    typer.echo(f"planted {summary['kind']} (k={summary['k']}) in {target}")


@app.command("verify")
def verify(
    name: Annotated[str, typer.Argument(help="A planted organism named in `organism.planted`.")],
    params: ParamsOption = Path("params.yaml"),
    data: DataOption = paths.ORGANISM_INSTRUCTIONS,
    model: Annotated[Path | None, typer.Option(help="Checkpoint folder of the planted organism.")] = None,
    out: Annotated[Path | None, typer.Option(help="Verification record to write.")] = None,
) -> None:
    """Measure the planted property (ablations with intervals, bypass searches) and write its record."""
    result = stages.verify(
        load_params(params), name, data, model or paths.planted_dir(name), out or paths.planted_record(name)
    )
    failed = result["failed_checks"]
    typer.echo(f"{name}: planted property {'holds' if not failed else 'fails: ' + '; '.join(failed)}")
