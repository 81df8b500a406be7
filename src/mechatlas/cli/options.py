"""Options shared by every command group of the ``mechatlas`` CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="The study configuration file.")]
