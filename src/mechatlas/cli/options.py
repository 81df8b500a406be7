"""Options shared by every command group of the ``mechatlas`` CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
