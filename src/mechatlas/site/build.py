"""Checking, building and serving the site: the last steps of the study.

- ``check_literature`` runs the referee (``mechatlas lit check``) and writes a stamp file when it passes,
  so the site rules in Snakemake wait for a clean literature;
- ``build_site`` runs ``mkdocs build --strict`` in-process, with this package's hook passed explicitly (so
  a copy of the repository without ``src/`` next to ``mkdocs.yml`` builds too), and fails on any warning;
- ``serve_site`` builds when the site is missing or older than its sources, then serves ``site/``.
"""

from __future__ import annotations

import functools
import http.server
import logging
import socketserver
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from mechatlas.errors import LiteratureError
from mechatlas.io import write_text
from mechatlas.literature import check_library
from mechatlas.site.citations import SiteError

HOOK = Path(__file__).with_name("hooks.py")


def check_literature(
    literature: Path, results_root: Path | None, posts_root: Path | None, stamp: Path
) -> str:
    """Run the literature referee; write ``stamp`` (a one-line summary) only if nothing is wrong."""
    problems = check_library(literature, results_root, posts_root)
    if problems:
        listing = "\n".join(str(problem) for problem in problems)
        raise LiteratureError(f"the literature check found {len(problems)} problem(s):\n{listing}")
    summary = f"{literature}: ok (checked with results in {results_root} and pages in {posts_root})"
    write_text(stamp, summary + "\n")
    return summary


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_site(
    config_file: Path = Path("mkdocs.yml"), site_dir: Path | None = None, *, strict: bool = True
) -> Path:
    """``mkdocs build --strict``: returns the site folder; any warning or error raises ``SiteError``."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if not config_file.is_file():
        raise SiteError(f"{config_file}: no such file; run from the repository root or pass --config")
    collect = _Collect()
    progress = logging.StreamHandler(sys.stderr)  # what `mkdocs build` itself would print
    progress.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
    mkdocs_log = logging.getLogger("mkdocs")
    level = mkdocs_log.level
    mkdocs_log.setLevel(logging.INFO)
    mkdocs_log.addHandler(collect)
    mkdocs_log.addHandler(progress)
    try:
        config = load_config(
            str(config_file),
            strict=strict,
            hooks=[str(HOOK)],
            site_dir=str(site_dir.resolve()) if site_dir is not None else None,
        )
        build(config)
    except MkDocsException as error:
        details = "\n".join(f"  {message}" for message in collect.messages)
        raise SiteError(f"mkdocs build --strict failed: {error}\n{details}".rstrip()) from None
    finally:
        mkdocs_log.removeHandler(collect)
        mkdocs_log.removeHandler(progress)
        mkdocs_log.setLevel(level)
    return Path(config.site_dir)


def newest_mtime(paths: Iterable[Path]) -> float:
    """The latest modification time among files and everything under folders (0 if none exist)."""
    newest = 0.0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                newest = max(newest, file.stat().st_mtime)
    return newest


def site_is_stale(site_dir: Path, sources: Iterable[Path]) -> bool:
    index = site_dir / "index.html"
    return not index.is_file() or newest_mtime(sources) > index.stat().st_mtime


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def make_server(site_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> socketserver.TCPServer:
    """A threaded static server for ``site_dir``; port 0 picks a free port."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise SiteError(f"cannot serve on {host}:{port} ({error.strerror}); pass another --port") from None


def serve_site(site_dir: Path, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``site_dir`` until interrupted, announcing its URL first."""
    if not (site_dir / "index.html").is_file():
        raise SiteError(f"{site_dir}/index.html is missing; build the site first (`mechatlas site build`)")
    with make_server(site_dir, host, port) as server:
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        announce(f"Serving {site_dir}/ at http://{bound_host}:{bound_port}/ (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            announce("stopped")
