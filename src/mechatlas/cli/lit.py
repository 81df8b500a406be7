"""``mechatlas lit``: check the literature library, and add papers to it.

Mounted on the main CLI as ``mechatlas lit``. ``check`` is the referee that ``make test``, CI and the
Snakemake rule before the site build all run; ``add`` is how a contributor brings in a new paper.
Both are thin wrappers over ``mechatlas.literature``; errors a user can fix are ``LiteratureError``,
which the main CLI prints as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mechatlas.errors import LiteratureError
from mechatlas.literature.add import add_papers, entry_from_metadata, split_authors
from mechatlas.literature.check import inspect_library

app = typer.Typer(
    help="The literature library (literature/): check that every key, id and link resolves, and add papers.",
    no_args_is_help=True,
)


RootOption = Annotated[Path, typer.Option("--root", help="The literature directory.")]


@app.command("check")
def check(
    root: RootOption = Path("literature"),
    results: Annotated[
        Path,
        typer.Option(
            help="Where result records live (<experiment>/<model>/metrics.json); missing means none."
        ),
    ] = Path("data/results"),
    posts: Annotated[
        Path, typer.Option(help="Markdown whose [@key] citations must resolve; missing means none.")
    ] = Path("reports"),
) -> None:
    """Check references.bib, taxonomy.yaml, papers/*.yaml, result links and citations.

    Prints every problem as `file:line: what is wrong — how to fix it` and exits with status 1 if there is
    any; otherwise prints a one-line summary and exits 0.
    """
    library, problems = inspect_library(root, results, posts)
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        typer.echo(f"{len(problems)} problem(s) in the literature; see CONTRIBUTING.md", err=True)
        raise typer.Exit(code=1)
    typer.echo(
        f"{root}: ok ({len(library.papers)} papers, {len(library.taxonomy)} taxonomy nodes, "
        f"{len(library.bibliography)} bib entries)"
    )


@app.command("add")
def add(
    source: Annotated[
        str | None,
        typer.Argument(help="A .bib file with the entry (or entries), or `-` to read BibTeX from stdin."),
    ] = None,
    arxiv: Annotated[
        str | None, typer.Option(help="arXiv id, e.g. 2406.11717 (typed-in metadata mode).")
    ] = None,
    doi: Annotated[
        str | None, typer.Option(help="DOI, e.g. 10.18653/v1/D19-1275 (typed-in metadata mode).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title, as printed (protect acronyms: {LLM}s).")] = None,
    authors: Annotated[
        str | None, typer.Option(help="Authors separated by `;` or ` and `: 'Andy Arditi; Oscar Obeso'.")
    ] = None,
    year: Annotated[int | None, typer.Option(help="Year of the version you cite.")] = None,
    venue: Annotated[
        str | None,
        typer.Option(help="Journal, conference or site; defaults to `arXiv preprint` with --arxiv."),
    ] = None,
    entry_type: Annotated[
        str, typer.Option("--type", help="BibTeX type: misc, article, inproceedings or techreport.")
    ] = "misc",
    url: Annotated[str | None, typer.Option(help="Optional URL of the paper.")] = None,
    key: Annotated[
        str | None, typer.Option(help="Bib key to use, e.g. arditi2024refusal (default: surname+year+word).")
    ] = None,
    verified: Annotated[
        bool, typer.Option(help="The metadata was checked against the arXiv or DOI record.")
    ] = False,
    root: RootOption = Path("literature"),
) -> None:
    """Add a paper: append its BibTeX entry to references.bib and write a stub papers/<key>.yaml.

    Give BibTeX (a .bib file, or `-` for stdin), or --arxiv/--doi with --title, --authors and --year.

    Nothing is fetched online; a paper already in the library (same key, DOI, arXiv id or title) is refused.

    Then fill in the stub and run `mechatlas lit check`. Examples:

    mechatlas lit add paper.bib

    mechatlas lit add --arxiv 2406.11717 --title "Refusal in ..." --authors "Andy Arditi; Oscar Obeso" --year 2024
    """
    if source is not None and (arxiv or doi):
        raise LiteratureError("give either BibTeX (a file or -) or --arxiv/--doi with metadata, not both")
    if source is not None:
        bibtex = sys.stdin.read() if source == "-" else _read_source(Path(source))
    elif arxiv or doi:
        missing = [
            name
            for name, value in (("--title", title), ("--authors", authors), ("--year", year))
            if not value
        ]
        if missing:
            raise LiteratureError(
                f"{', '.join(missing)} required with --arxiv/--doi (nothing is fetched online)"
            )
        bibtex = entry_from_metadata(
            title=title or "",
            authors=split_authors(authors or ""),
            year=year or 0,
            venue=venue,
            arxiv=arxiv,
            doi=doi,
            url=url,
            entry_type=entry_type,
            key=key,
        )
    else:
        raise LiteratureError(
            "nothing to add: give a .bib file, `-` for stdin, or --arxiv/--doi with metadata"
        )
    for added in add_papers(bibtex, root, key=key, verified=verified):
        renamed = f" (renamed from `{added.renamed_from}`)" if added.renamed_from else ""
        typer.echo(
            f"added `{added.key}`{renamed}: fill in {added.paper_file} (each claim needs a `location` in the "
            "paper), then run `mechatlas lit check`"
        )


def _read_source(path: Path) -> str:
    if not path.is_file():
        raise LiteratureError(f"{path}: no such file; give a .bib file, or `-` to read BibTeX from stdin")
    return path.read_text(encoding="utf-8")
