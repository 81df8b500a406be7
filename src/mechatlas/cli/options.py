"""Options shared by every command group of the ``mechatlas`` CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="The study configuration file.")]

OverwriteOption = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace outputs that already exist (by default the CLI never overwrites the pipeline's artefacts).",
    ),
]


def fresh(path: Path, overwrite: bool) -> Path:
    """``path``, after refusing to replace an existing output unless ``--overwrite`` was given."""
    from mechatlas.errors import MechatlasError

    if path.exists() and not overwrite:
        raise MechatlasError(
            f"{path}: already exists (the pipeline's artefact, tracked by DVC); pass --overwrite to replace it, "
            "or write elsewhere with --out / --results"
        )
    return path


def output_path(given: Path | None, default: Path, overwrite: bool, guard: str | None = None) -> Path:
    """``given``, else the pipeline's ``default`` location, after refusing to replace an output there unless
    ``--overwrite`` was given.

    ``guard`` names the file inside that folder whose presence means the stage has already run: a results folder
    holds several stages' outputs, so the folder existing is no reason to refuse. Without it the path itself is
    guarded.
    """
    path = given or default
    fresh(path / guard if guard else path, overwrite)
    return path


def echo_verdicts(result: dict[str, Any]) -> None:
    """Print a metrics record's verdict per claim, as the ``evaluate``/``metrics`` and ``all`` commands report."""
    typer.echo(json.dumps({c["claim"]: c["verdict"] for c in result["replicates"]}, indent=2))
