"""``mechatlas site``: generate the pages, build the site (``mkdocs build --strict``), serve it.

Mounted on the main CLI as ``mechatlas site``; Snakemake's ``site_pages`` and ``site_build`` rules call
the same library functions. Errors a user can fix are ``MechatlasError``s, printed as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mechatlas.site.build import build_site, check_literature, repo_url, serve_site, site_is_stale
from mechatlas.site.pages import write_site_pages
from mechatlas.site.posts import write_post_stub

app = typer.Typer(
    help="The survey site: generate pages from literature/ and data/results/, build it, serve it.",
    no_args_is_help=True,
)


Literature = Annotated[Path, typer.Option(help="The literature directory.")]


Results = Annotated[Path, typer.Option(help="Where result records live.")]


Docs = Annotated[
    Path, typer.Option(help="The site's docs folder (MkDocs docs_dir); pages go to <docs>/generated.")
]


Config = Annotated[Path, typer.Option("--config", help="The MkDocs configuration.")]


SiteDir = Annotated[Path, typer.Option(help="Where the built site goes.")]


@app.command("pages")
def pages(
    literature: Literature = Path("literature"),
    results: Results = Path("data/results"),
    docs: Docs = Path("reports"),
    figures: Annotated[Path, typer.Option(help="Figures folder, inside the docs folder.")] = Path(
        "reports/figures"
    ),
    dvc_lock: Annotated[Path, typer.Option(help="dvc.lock, for the input hashes of each result.")] = Path(
        "dvc.lock"
    ),
    sources: Annotated[Path, typer.Option(help="The hand-written pages and the blog.")] = Path("pages"),
    config: Config = Path("mkdocs.yml"),
) -> None:
    """Regenerate the docs folder: reports/generated/ (a page per method, paper and result, the tree and the
    dashboard) and the hand-written pages from pages/, with citations and macros expanded."""
    written = write_site_pages(
        literature=literature,
        results_root=results,
        docs_dir=docs,
        figures_root=figures,
        dvc_lock=dvc_lock,
        sources_dir=sources,
        repo_url=repo_url(config),
    )
    typer.echo(f"wrote {sum(p.endswith('.md') for p in written)} pages to {docs}")


@app.command("check")
def check(
    stamp: Annotated[Path, typer.Argument(help="Stamp file written when the check passes.")],
    literature: Literature = Path("literature"),
    results: Results = Path("data/results"),
    docs: Docs = Path("reports"),
) -> None:
    """Run `mechatlas lit check` over literature, results and pages; write STAMP if it passes."""
    typer.echo(check_literature(literature, results, docs, stamp))


@app.command("build")
def build(
    config: Config = Path("mkdocs.yml"),
    site_dir: SiteDir = Path("site"),
    builder: Annotated[str, typer.Option(help="mkdocs (Material) or zensical.")] = "mkdocs",
) -> None:
    """Build the site (`mkdocs build --strict`, or Zensical's strict build): any warning fails the build."""
    built = build_site(config, site_dir, builder=builder)
    typer.echo(f"built the site in {built}")


@app.command("serve")
def serve(
    config: Config = Path("mkdocs.yml"),
    site_dir: SiteDir = Path("site"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    rebuild: Annotated[bool, typer.Option(help="Regenerate and rebuild when sources are newer.")] = True,
) -> None:
    """Serve the built site locally and print its URL; build it first if it is missing or stale."""
    sources = [config, Path("literature"), Path("data/results"), Path("pages"), Path("reports")]
    if rebuild and site_is_stale(site_dir, sources):
        typer.echo("the site is missing or older than its sources: regenerating pages and building it")
        pages(config=config)
        build(config, site_dir)
    serve_site(site_dir, host, port, typer.echo)


@app.command("post")
def post(
    title: Annotated[str, typer.Argument(help="The post's title.")],
    category: Annotated[
        list[str], typer.Option("--category", "-c", help="A blog category (repeatable); see mkdocs.yml.")
    ],
    config: Config = Path("mkdocs.yml"),
    posts_dir: Annotated[Path, typer.Option(help="Where posts live.")] = Path("pages/blog/posts"),
) -> None:
    """Start a blog-series post: a dated stub with front matter, a citation and a metric macro to copy."""
    path = write_post_stub(title, category, posts_dir=posts_dir, config_file=config)
    typer.echo(f"wrote {path}: write the post, then `mechatlas site pages && mechatlas site build`")
