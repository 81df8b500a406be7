"""Comparing two builds of the same docs folder (MkDocs Material and Zensical): pages, links and numbers.

``compare_builds`` reads every HTML page of two built sites and reports, page by page, what differs in
what a reader gets: which pages exist, where the links in the page's content lead, and which numbers its
content shows. Theme chrome (navigation, header, footer, search) is left out: only the article is read.
Differences a caller expects (a file only one builder writes) are passed as ``allowed``.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?%?")


class _Article(HTMLParser):
    """The text and link targets inside the page's ``<article>`` (Material's content area)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.skip = 0
        self.text: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article":
            self.depth += 1
        if not self.depth:
            return
        values = dict(attrs)
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag == "img" and values.get("src"):
            self.images.append(str(values["src"]))

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag in ("script", "style"):
            self.skip = max(self.skip - 1, 0)
        if tag == "article":
            self.depth = max(self.depth - 1, 0)

    def handle_data(self, data: str) -> None:
        if self.depth and not self.skip:
            self.text.append(data)


@dataclass(frozen=True)
class PageContent:
    """What a reader gets from one page's article: its numbers and where its links and images lead."""

    numbers: Counter[str]
    links: frozenset[str]
    images: frozenset[str]
    words: int


def read_page(path: Path, url: str) -> PageContent:
    """One built page's article; links are resolved against ``url`` (the page's path in the site)."""
    parser = _Article()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    text = " ".join(" ".join(parser.text).split())
    return PageContent(
        numbers=Counter(match.replace("−", "-") for match in NUMBER.findall(text)),
        links=frozenset(_resolve(url, href) for href in parser.links if _internal(href)),
        images=frozenset(_resolve(url, src) for src in parser.images if _internal(src)),
        words=len(text.split()),
    )


def _internal(href: str) -> bool:
    parts = urlsplit(href)
    return not parts.scheme and not parts.netloc and not href.startswith(("#", "mailto:"))


def _resolve(url: str, href: str) -> str:
    target, fragment = urldefrag(href)
    base = url if url.endswith("/") else posixpath.dirname(url) + "/"
    resolved = posixpath.normpath(posixpath.join(base, target)) if target else url
    if resolved.endswith("/index.html"):
        resolved = resolved[: -len("index.html")]
    elif target.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved + (f"#{fragment}" if fragment else "")


def site_pages(site: Path) -> dict[str, Path]:
    """Every HTML page of a built site by its URL path (``generated/papers/x/``)."""
    pages = {}
    for path in sorted(site.rglob("*.html")):
        relative = path.relative_to(site).as_posix()
        url = relative[: -len("index.html")] if relative.endswith("index.html") else relative
        pages[url] = path
    return pages


@dataclass
class Comparison:
    """Differences between two builds; empty lists mean they agree."""

    only_first: list[str] = field(default_factory=list)
    only_second: list[str] = field(default_factory=list)
    links: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    images: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    numbers: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    compared: int = 0

    def problems(self) -> list[str]:
        out = [f"page only in the first build: {p}" for p in self.only_first]
        out += [f"page only in the second build: {p}" for p in self.only_second]
        for kind, table in (("links", self.links), ("images", self.images), ("numbers", self.numbers)):
            for page, (first, second) in table.items():
                out.append(f"{page}: {kind} differ (first only: {first[:8]}; second only: {second[:8]})")
        return out


def compare_builds(first: Path, second: Path, *, allowed_pages: frozenset[str] = frozenset()) -> Comparison:
    """Compare two built sites page by page; ``allowed_pages`` may exist in only one of them."""
    a, b = site_pages(first), site_pages(second)
    result = Comparison()
    result.only_first = sorted(set(a) - set(b) - allowed_pages)
    result.only_second = sorted(set(b) - set(a) - allowed_pages)
    for url in sorted(set(a) & set(b)):
        x, y = read_page(a[url], url), read_page(b[url], url)
        result.compared += 1
        if x.links != y.links:
            result.links[url] = (sorted(x.links - y.links), sorted(y.links - x.links))
        if x.images != y.images:
            result.images[url] = (sorted(x.images - y.images), sorted(y.images - x.images))
        if x.numbers != y.numbers:
            result.numbers[url] = (
                sorted((x.numbers - y.numbers).elements()),
                sorted((y.numbers - x.numbers).elements()),
            )
    return result


# --- Reading numbers as a person would ------------------------------------------------------------

DECIMAL = re.compile(r"\d[\d,]*(?:\.\d+)?")


def significant_digits(number: str) -> int:
    """How many significant digits a written number shows: ``0.0600`` 3, ``919,680`` 6, ``1e-06`` 1.

    >>> [significant_digits(x) for x in ("0.0600", "919,680", "99", "0.9942009855613089", "2026")]
    [3, 6, 2, 16, 4]
    """
    digits = number.replace(",", "").split("e")[0].replace("-", "").replace(".", "")
    return len(digits.lstrip("0")) or 1


class _Cells(HTMLParser):
    """The text of every table cell, leaving out code (hashes and commits are not numbers)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self.cell: list[str] | None = None
        self.code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):
            self.cell = []
        elif tag == "code":
            self.code += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.cells.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "code":
            self.code = max(self.code - 1, 0)

    def handle_data(self, data: str) -> None:
        if self.cell is not None and not self.code:
            self.cell.append(data)


def too_precise_cells(html: str, limit: int = 6) -> list[str]:
    """Table cells of a page that show a number with more than ``limit`` significant digits."""
    parser = _Cells()
    parser.feed(html)
    return [
        cell for cell in parser.cells if any(significant_digits(n) > limit for n in DECIMAL.findall(cell))
    ]
