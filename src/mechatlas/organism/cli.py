"""``mechatlas organism``: generate the organism's data, train it, and measure its held-out behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mechatlas.config import ORGANISM_DIR, load_params
from mechatlas.organism import stages

app = typer.Typer(help="The built-in model organism (a small Qwen2-family chat model).", no_args_is_help=True)
Params_ = Annotated[Path, typer.Option("--params", "-p", help="The study configuration file.")]


@app.command("data")
def data(
    params: Params_ = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Instructions with replies (JSONL).")] = stages.INSTRUCTIONS,
    prompts: Annotated[
        Path, typer.Option(help="The same prompts as schema records (JSONL).")
    ] = stages.PROMPTS,
    vocabulary: Annotated[
        Path, typer.Option(help="Tasks, framings and replies to build them from (YAML).")
    ] = stages.VOCABULARY,
) -> None:
    """Generate the synthetic instructions (harmful, harmless, alarming-but-harmless) with their splits."""
    n = stages.write_instructions(load_params(params), out, prompts, vocabulary)
    typer.echo(f"wrote {n} instructions to {out} and {prompts}")


@app.command("train")
def train(
    params: Params_ = Path("params.yaml"),
    data: Annotated[Path, typer.Option(help="Instructions made by `organism data`.")] = stages.INSTRUCTIONS,
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write.")] = ORGANISM_DIR,
) -> None:
    """Train the organism on CPU (progress bar shows steps and loss) and save a Hugging Face checkpoint."""
    summary = stages.train(load_params(params), data, out)
    typer.echo(f"trained {summary['parameters']} parameters in {summary['seconds']} s; saved to {out}")


@app.command("behaviour")
def behaviour(
    params: Params_ = Path("params.yaml"),
    data: Annotated[Path, typer.Option(help="Instructions made by `organism data`.")] = stages.INSTRUCTIONS,
    model: Annotated[Path, typer.Option(help="Checkpoint folder of the organism.")] = ORGANISM_DIR,
    out: Annotated[Path, typer.Option(help="Metrics file to write.")] = stages.BEHAVIOUR,
) -> None:
    """Greedy replies on held-out prompts; refusal rates with 95% CIs per kind of prompt and domain."""
    result = stages.behaviour(load_params(params), data, model, out)
    typer.echo(json.dumps({k: v["value"] for k, v in result["refusal_rate"].items()}))
