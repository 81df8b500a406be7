"""Checking, building and serving the site: the last steps of the study.

- ``check_literature`` runs the referee (``mechatlas lit check``) and writes a stamp file when it passes,
  so the site rules in Snakemake wait for a clean literature;
- ``build_config`` derives the configuration both builders read from ``mkdocs.yml``: the navigation grown
  with every generated page (from ``reports/generated/.nav.json``), and for Zensical without the search
  options only Material has; nothing in it runs project code, so MkDocs Material and Zensical build the
  same docs folder;
- ``build_site`` runs ``mkdocs build --strict`` in-process (or ``zensical build``) and fails on any warning;
- ``serve_site`` builds when the site is missing or older than its sources, then serves ``site/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import socketserver
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from mechatlas.errors import LiteratureError
from mechatlas.io import write_text
from mechatlas.literature import check_library
from mechatlas.site.citations import SiteError

BUILD_CONFIG = ".mkdocs.build.yml"  # the derived configuration, next to mkdocs.yml (git ignores it)
BUILDERS = ("mkdocs", "zensical")
GENERATED_NAV = Path("generated") / ".nav.json"
ZENSICAL_SEARCH_OPTIONS = ("enabled", "separator")  # all that Zensical's search plugin accepts


def read_config(config_file: Path) -> dict[str, Any]:
    """``mkdocs.yml`` as data (safe YAML: the site's configuration uses no Python tags)."""
    if not config_file.is_file():
        raise SiteError(f"{config_file}: no such file; run from the repository root or pass --config")
    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SiteError(f"{config_file}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SiteError(f"{config_file}: expected a mapping of settings")
    return data


def config_value(config_file: Path, key: str) -> str | None:
    """One top-level setting of ``mkdocs.yml`` as text, or None when it (or the file) is absent."""
    if not config_file.is_file():
        return None
    value = read_config(config_file).get(key)
    return str(value) if value else None


def repo_url(config_file: Path) -> str | None:
    """The repository's URL, the one place it is written (``extra.mechatlas.repo_url`` in mkdocs.yml)."""
    if not config_file.is_file():
        return None
    extra = read_config(config_file).get("extra") or {}
    value = (extra.get("mechatlas") or {}).get("repo_url") if isinstance(extra, dict) else None
    return str(value) if value else None


def expand_nav(nav: list[Any], sections: dict[str, list[str]]) -> list[Any]:
    """Turn ``{Title: generated/x/index.md}`` into a section: the index page, then every page it lists.

    Child entries carry no title, so each builder takes it from the page's own (escaped) first heading.
    """
    expanded = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            ((title, target),) = item.items()
            if isinstance(target, str) and target in sections:
                item = {title: [target, *sections[target]]}
        expanded.append(item)
    return expanded


def search_options_for(builder: str, plugins: list[Any]) -> list[Any]:
    """The plugin list with the search options ``builder`` does not know dropped.

    Zensical's search plugin takes ``enabled`` and ``separator`` only and refuses any other option; the
    field weights in ``mkdocs.yml`` (``fields``) are for Material's search and are dropped for Zensical,
    which ranks with weights of its own.
    """
    if builder != "zensical":
        return plugins
    kept: list[Any] = []
    for plugin in plugins:
        if isinstance(plugin, dict) and isinstance(plugin.get("search"), dict):
            options = {k: v for k, v in plugin["search"].items() if k in ZENSICAL_SEARCH_OPTIONS}
            plugin = {**plugin, "search": options} if options else "search"
        kept.append(plugin)
    return kept


def build_config(config_file: Path, site_dir: Path | None = None, builder: str = "mkdocs") -> Path:
    """Write the configuration ``builder`` reads, next to ``config_file``; returns its path."""
    config = read_config(config_file)
    root = config_file.resolve().parent
    docs = root / str(config.get("docs_dir", "docs"))
    nav_file = docs / GENERATED_NAV
    if not nav_file.is_file():
        raise SiteError(
            f"{nav_file} is missing: the generated pages are not there yet — "
            "run `mechatlas site pages` (or `make run`) before building the site"
        )
    sections = json.loads(nav_file.read_text(encoding="utf-8"))
    config.pop("hooks", None)
    if isinstance(config.get("nav"), list):
        config["nav"] = expand_nav(config["nav"], sections)
    if isinstance(config.get("plugins"), list):
        config["plugins"] = search_options_for(builder, config["plugins"])
    if site_dir is not None:
        config["site_dir"] = os.path.relpath(site_dir.resolve(), root)
    target = root / BUILD_CONFIG
    write_text(
        target,
        "# Derived from mkdocs.yml by `mechatlas site build`; do not edit.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
    )
    return target


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
    config_file: Path = Path("mkdocs.yml"),
    site_dir: Path | None = None,
    *,
    strict: bool = True,
    builder: str = "mkdocs",
) -> Path:
    """Build the site with ``builder`` (``mkdocs``: ``mkdocs build --strict``, or ``zensical``); returns
    the site folder. Any warning or error raises ``SiteError``."""
    if builder not in BUILDERS:
        raise SiteError(f"unknown site builder {builder!r}; use one of {', '.join(BUILDERS)}")
    derived = build_config(config_file, site_dir, builder)
    if builder == "zensical":
        return _zensical(derived)
    return _mkdocs(derived, strict=strict)


def zensical_executable() -> str | None:
    """The ``zensical`` command of this environment (next to its Python), or on PATH; None if absent."""
    import shutil

    beside = Path(sys.executable).with_name("zensical")
    return str(beside) if beside.is_file() else shutil.which("zensical")


def _zensical(config_file: Path) -> Path:
    """``zensical build`` on the derived configuration, from its folder (Zensical's project root)."""
    import subprocess

    executable = zensical_executable()
    if executable is None:
        raise SiteError("zensical is not installed: `pip install -c constraints.txt -e '.[dev]'` installs it")
    done = subprocess.run(
        [executable, "build", "--clean", "--strict", "-f", config_file.name],
        cwd=config_file.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or "error" in output.lower():
        raise SiteError(f"zensical build failed:\n{output}")
    config = read_config(config_file)
    return (config_file.parent / str(config.get("site_dir", "site"))).resolve()


def _mkdocs(config_file: Path, *, strict: bool) -> Path:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    collect = _Collect()
    progress = logging.StreamHandler(sys.stderr)  # what `mkdocs build` itself would print
    progress.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
    mkdocs_log = logging.getLogger("mkdocs")
    level = mkdocs_log.level
    mkdocs_log.setLevel(logging.INFO)
    mkdocs_log.addHandler(collect)
    mkdocs_log.addHandler(progress)
    try:
        config = load_config(str(config_file), strict=strict)
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
