"""The ``mechatlas`` command line: one subcommand per pipeline stage.

Every command is a thin wrapper: it reads params, calls one library function and writes its outputs.
Errors the user can fix (``MechatlasError``) are printed as one line, without a traceback, and the
command exits with status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from mechatlas import config as config_module
from mechatlas.cli.options import ParamsOption
from mechatlas.errors import ConfigError, MechatlasError
from mechatlas.numerics import pin_cpu_kernels

app = typer.Typer(
    help="mechatlas: a reproducible survey of mechanistic interpretability. "
    "Each subcommand runs one stage of the study; `make run` runs them all through Snakemake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


config_app = typer.Typer(help="Validate params.yaml and export its schema.", no_args_is_help=True)


app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(params: ParamsOption = Path("params.yaml")) -> None:
    """Validate params.yaml; an invalid value is reported with its key and what is allowed."""
    loaded = config_module.load_params(params)
    for name, spec in loaded.models.items():  # DVC would stop on the missing dependency less readably
        if spec.is_hub_id and spec.checkpoint is not None and not Path(spec.checkpoint).is_dir():
            raise ConfigError(
                f"{params}: `models.{name}.checkpoint` ({spec.checkpoint}) does not exist; download the "
                f"snapshot there (`huggingface-cli download {spec.source} --local-dir {spec.checkpoint}`) "
                "or point it at a local copy"
            )
    typer.echo(
        f"{params}: ok ({len(loaded.models)} model(s); params hash {config_module.params_hash(loaded)})"
    )


@config_app.command("apply")
def config_apply(
    overlay: Annotated[Path, typer.Argument(help="An overlay such as params/team.yaml.")],
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Where to write the merged params.")] = Path("params.yaml"),
) -> None:
    """Merge an overlay into params.yaml (mappings key by key), validate it, and write the result."""
    from mechatlas.io import write_text

    loaded, merged = config_module.apply_overlay(params, overlay)
    header = f"# {out}: {params} with {overlay} laid over it (`mechatlas config apply`); `git checkout {params}` undoes it.\n"
    write_text(out, header + yaml.safe_dump(merged, sort_keys=False, width=110, allow_unicode=True))
    typer.echo(
        f"wrote {out}: {len(loaded.models)} model(s) ({', '.join(loaded.models)}); params hash {config_module.params_hash(loaded)}"
    )


@config_app.command("schema")
def config_schema(
    output: Annotated[Path, typer.Option(help="Where to write the JSON Schema (YAML).")] = Path(
        "workflow/schemas/params.schema.yaml"
    ),
) -> None:
    """Regenerate workflow/schemas/params.schema.yaml from the typed config model."""
    from mechatlas.io import write_text

    write_text(output, yaml.safe_dump(config_module.json_schema(), sort_keys=False, width=100))
    typer.echo(f"wrote {output}")


workflow_app = typer.Typer(help="Keep Snakemake and DVC in agreement.", no_args_is_help=True)


app.add_typer(workflow_app, name="workflow")


@workflow_app.command("sync")
def workflow_sync(target: Annotated[str, typer.Argument(help="Snakemake target.")] = "all") -> None:
    """After `dvc pull`/`checkout`: if DVC finds everything up to date, mark it so for Snakemake too.

    Snakemake falls back to file mtimes where its metadata is missing, and DVC rewrites mtimes; without
    this step a pulled, up-to-date tree would rerun whole sub-workflows for nothing.
    """
    from mechatlas.cli.workflow import sync

    typer.echo(sync(target))


@workflow_app.command("deps")
def workflow_deps(
    check: Annotated[bool, typer.Option(help="Only report whether dvc.yaml is up to date.")] = False,
    dvc_file: Annotated[Path, typer.Option(help="The DVC pipeline file.")] = Path("dvc.yaml"),
) -> None:
    """Write each DVC stage's code deps: the files its rules' scripts import, transitively."""
    from mechatlas.cli.dvc_deps import with_code_deps
    from mechatlas.io import write_text

    updated = with_code_deps(Path("."), dvc_file)
    if updated == dvc_file.read_text():
        typer.echo(f"{dvc_file}: code deps up to date")
    elif check:
        raise MechatlasError(f"{dvc_file}: code deps are out of date; run `mechatlas workflow deps`")
    else:
        write_text(dvc_file, updated)
        typer.echo(f"{dvc_file}: code deps rewritten from the import closure")


def _mount_subcommands() -> None:
    """Attach the stage command groups; each lives next to the library code it wraps."""
    from mechatlas.cli.dimensionality import app as dimensionality_app
    from mechatlas.cli.lit import app as lit_app
    from mechatlas.cli.organism import app as organism_app
    from mechatlas.cli.prompts import app as prompts_app
    from mechatlas.cli.refusal import app as refusal_app
    from mechatlas.cli.site import app as site_app

    app.add_typer(organism_app, name="organism")
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(lit_app, name="lit")
    app.add_typer(refusal_app, name="refusal")
    app.add_typer(dimensionality_app, name="dimensionality")
    app.add_typer(site_app, name="site")


_mount_subcommands()


def main() -> None:
    try:
        pin_cpu_kernels()  # the stages' own kernels (mechatlas.numerics), so a command's bytes match a job's
        app()
    except MechatlasError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)


if __name__ == "__main__":
    main()
