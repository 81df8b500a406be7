"""The mechatlas MkDocs hook: citations, result macros and the generated navigation.

Registered in ``mkdocs.yml`` under ``hooks:`` (``mechatlas site build`` passes this file itself, so the
build also works where the repository's ``src/`` is not next to ``mkdocs.yml``). It does three things:

- ``on_config``: reads the bibliography (the whole literature, checked), and grows the Methods, Papers
  and Results entries of the navigation into sections listing every generated page;
- ``on_page_markdown``: expands ``[@key]`` citations and ``{{ metric(...) }}`` macros in hand-written pages
  and posts (``mechatlas.site.citations``); generated pages are complete as written and left alone.

Every problem is raised as a ``PluginError`` whose message starts with ``file:line``, which fails the build.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from mechatlas.errors import MechatlasError
from mechatlas.literature import load_library
from mechatlas.site.citations import CitationStyle, MacroContext, render_page
from mechatlas.site.text import relative

GENERATED = "generated"
NAV_FILE = ".nav.json"  # written by the page generator; a dotfile, so MkDocs does not publish it

_state: dict[str, Any] = {}


def settings(config: MkDocsConfig) -> dict[str, Path]:
    """Where the literature and the results are, relative to mkdocs.yml (``extra.mechatlas`` overrides)."""
    root = Path(config.config_file_path or "mkdocs.yml").resolve().parent
    extra: dict[str, Any] = dict(config.extra or {}).get("mechatlas") or {}
    return {
        "root": root,
        "literature": root / extra.get("literature", "literature"),
        "results": root / extra.get("results", "data/results"),
    }


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    paths = settings(config)
    try:
        library = load_library(paths["literature"])
    except MechatlasError as error:
        raise PluginError(str(error)) from None
    _state.update(
        root=paths["root"],
        style=CitationStyle.from_bibliography(library.bibliography),
        macros=MacroContext(paths["results"], paths["root"]),
    )
    nav_file = Path(config.docs_dir) / GENERATED / NAV_FILE
    if not nav_file.is_file():
        raise PluginError(
            f"{nav_file} is missing: the generated pages are not there yet — "
            "run `mechatlas site pages` (or `make run`) before building the site"
        )
    sections = json.loads(nav_file.read_text(encoding="utf-8"))
    if config.nav is not None:
        config.nav = expand_nav(config.nav, sections)
    return config


def expand_nav(nav: list[Any], sections: dict[str, list[str]]) -> list[Any]:
    """Turn ``{Title: generated/x/index.md}`` into a section: the index page, then every page it lists.

    Child entries carry no title, so MkDocs takes each from the page's own (escaped) first heading.
    """
    expanded = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            ((title, target),) = item.items()
            if isinstance(target, str) and target in sections:
                item = {title: [target, *sections[target]]}
        expanded.append(item)
    return expanded


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    source = page.file.src_uri
    if source.startswith(f"{GENERATED}/") or not _state:
        return markdown
    shown = os.path.relpath(page.file.abs_src_path or source, _state["root"])

    def paper_link(key: str) -> str:
        return relative(source, f"{GENERATED}/papers/{key}.md")

    try:
        return render_page(
            markdown,
            file=shown,
            style=_state["style"],
            paper_link=paper_link,
            macros=_state["macros"],
            first_line=1 + front_matter_lines(page.file.abs_src_path, markdown),
        )
    except MechatlasError as error:
        raise PluginError(str(error)) from None


def front_matter_lines(path: str | None, markdown: str) -> int:
    """How many lines precede ``markdown`` in its file (MkDocs strips the front matter), for ``file:line``."""
    if path is None or not Path(path).is_file():
        return 0
    raw = Path(path).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    body = markdown.lstrip("\n")
    index = raw.find(body.rstrip()) if body.strip() else -1
    leading = len(markdown) - len(body)  # blank lines MkDocs kept at the top of ``markdown``
    return max(raw[:index].count("\n") - leading, 0) if index > 0 else 0
