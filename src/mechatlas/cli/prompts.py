"""``mechatlas prompts``: check prompt files and import public prompt sets into the record schema."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Annotated

import typer

from mechatlas.prompts import PUBLIC_SETS, load_public_set, read_jsonl, write_records

app = typer.Typer(help="Prompt sets in the DESIGN.md record schema.", no_args_is_help=True)


@app.command("check")
def check(files: Annotated[list[Path], typer.Argument(help="JSONL prompt files.")]) -> None:
    """Validate prompt files; the first bad record is reported as file:line with the fix."""
    for path in files:
        records = read_jsonl(path)
        counts = collections.Counter((r.label, r.split) for r in records)
        typer.echo(
            f"{path}: {len(records)} records ok; "
            + ", ".join(f"{k[0]}/{k[1]}={v}" for k, v in sorted(counts.items()))
        )


@app.command("import")
def import_set(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(sorted(PUBLIC_SETS))}.")],
    out: Annotated[Path, typer.Option(help="JSONL file to write.")],
    location: Annotated[
        str | None, typer.Option(help="Local file, or a hub dataset id (default: the usual mirror).")
    ] = None,
    allow_hub: Annotated[bool, typer.Option(help="Allow downloading from the Hugging Face hub.")] = False,
) -> None:
    """Map a public prompt set (AdvBench, HarmBench, ...) into prompt records."""
    records = load_public_set(name, location, allow_hub=allow_hub)
    write_records(out, records)
    typer.echo(f"wrote {len(records)} records to {out}")
