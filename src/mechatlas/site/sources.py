"""The hand-written pages, rendered into the docs folder when the pages are generated.

The site's hand-written Markdown (the home page, the blog and its posts, the tags page) lives in
``pages/``. ``render_sources`` writes each page into the docs folder (``reports/``) at the same relative
path, with ``[@key]`` citations and ``{{ metric(...) }}`` macros already expanded
(``mechatlas.site.citations``), the glossary's hover definitions appended and an "edit this page" link to
its source. Other files (the blog's ``.authors.yml``) are copied as they are.

Doing this when the pages are generated, instead of in a builder's plugin, is what lets the same docs
folder build with MkDocs Material and with Zensical: neither needs to run project code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mechatlas.io import atomic_dir, write_text
from mechatlas.literature import Library
from mechatlas.site.citations import CitationStyle, MacroContext, render_page
from mechatlas.site.text import relative

SOURCES = "pages"
CONTRIBUTING_PAGE = "contributing.md"


def front_matter(text: str) -> tuple[str, str, int]:
    """``(front matter with its fences, body, number of lines before the body)``."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            head = text[: end + 5]
            return head, text[end + 5 :], head.count("\n")
    return "", text, 0


def render_source(
    text: str,
    *,
    page: str,
    shown: str,
    style: CitationStyle,
    macros: MacroContext,
    footer: str = "",
) -> str:
    """One hand-written page, ready for a builder: front matter kept, citations and macros expanded.

    ``page`` is its docs-relative path (for links to paper pages); ``shown`` names it in errors.
    """
    head, body, before = front_matter(text)
    macros.page, macros.figures_shown = page, 0

    def paper_link(key: str) -> str:
        return relative(page, f"generated/papers/{key}.md")

    rendered = render_page(
        body, file=shown, style=style, paper_link=paper_link, macros=macros, first_line=before + 1
    )
    return head + rendered.rstrip("\n") + "\n" + footer


def render_sources(
    sources_dir: Path,
    docs_dir: Path,
    *,
    library: Library,
    results_root: Path,
    project_root: Path,
    footers: Mapping[str, str] | None = None,
    repo_url: str | None = None,
) -> list[str]:
    """Render every file under ``sources_dir`` into ``docs_dir``; returns the docs-relative paths written.

    ``footers`` maps a docs-relative page to text appended to it (edit links, glossary definitions).
    Folders are swapped in whole, so a page removed from the sources disappears from the docs folder;
    a failure (an unknown citation key) leaves the docs folder as it was.
    """
    if not sources_dir.is_dir():
        return []
    style = CitationStyle.from_bibliography(library.bibliography)
    macros = MacroContext(results_root, project_root, repo_url=repo_url, docs_dir=docs_dir)
    rendered: dict[str, bytes] = {}
    for path in sorted(p for p in sources_dir.rglob("*") if p.is_file()):
        page = path.relative_to(sources_dir).as_posix()
        if path.suffix == ".md":
            shown = os.path.relpath(path, project_root)
            text = render_source(
                path.read_text(encoding="utf-8-sig").replace("\r\n", "\n"),
                page=page,
                shown=shown,
                style=style,
                macros=macros,
                footer=(footers or {}).get(page, ""),
            )
            rendered[page] = text.encode("utf-8")
        else:
            rendered[page] = path.read_bytes()
    tops = sorted({page.split("/")[0] for page in rendered if "/" in page})
    for top in tops:
        with atomic_dir(docs_dir / top) as tmp:
            for page, data in rendered.items():
                if page.startswith(top + "/"):
                    target = tmp / page[len(top) + 1 :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
    for page, data in rendered.items():
        if "/" not in page:
            write_text(docs_dir / page, data.decode("utf-8"))
    return sorted(rendered)
