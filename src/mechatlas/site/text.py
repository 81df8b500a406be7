"""Turning contributed text and numbers into Markdown that shows them literally.

Literature files, result records and model replies are data, not markup. A paper summary that contains
``<script>`` must show the characters ``<script>``, not run them; Python-Markdown passes raw HTML through,
and Markdown's own syntax (``[a](javascript:...)`` links, ``{: onclick=...}`` attribute lists, a ``#``
or ``1.`` that starts a block) can smuggle markup in too. So every piece of contributed text goes through
``md_text`` before it is placed in a page: it becomes one line in which every character Markdown or HTML
could act on is written as a numeric character reference (``&#60;`` for ``<``), which Markdown leaves
alone and a browser shows as the character itself.

The same module formats numbers for tables (``fmt_number``), builds safe link targets (``safe_url``), and
reads the site's own prose (``prose``): the paragraphs of the generated pages that are not made from data,
kept as Markdown files in ``mechatlas/site/prose/``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import posixpath
import re
from urllib.parse import quote, urlsplit

from pybtex.plugin import find_plugin
from pybtex.richtext import BaseText, Text

# Characters that can start markup anywhere in a line: raw HTML and entities, links and images,
# attribute lists, emphasis, code spans, table cells, escapes, macros ({{ }}) and citations ([@key]).
_ALWAYS = frozenset("&<>[]()!{}*_`|\\~^=@$")
# Characters that only start a block at the beginning of a line (headings, lists, quotes, details).
_AT_START = frozenset("#+-.:?0123456789")


def prose(name: str) -> str:
    """The paragraphs of ``mechatlas/site/prose/<name>.md``, each on one line, separated by a blank line.

    Line breaks inside a paragraph are only for reading the file; a page shows each paragraph as one
    line, as if it had been written in the page code.
    """
    source = importlib.resources.files("mechatlas.site").joinpath("prose", f"{name}.md")
    text = source.read_text(encoding="utf-8")
    return "\n\n".join(" ".join(part.split()) for part in re.split(r"\n\s*\n", text.strip()))


def _ref(char: str) -> str:
    return f"&#{ord(char)};"


def md_text(text: object) -> str:
    """``text`` as one line of Markdown that renders exactly as written, with nothing interpreted.

    >>> md_text("<script>alert(1)</script>")
    '&#60;script&#62;alert&#40;1&#41;&#60;/script&#62;'
    >>> md_text("difference-in-means, p. 3")
    'difference-in-means, p. 3'
    """
    line = " ".join(str(text).split())
    out = [_ref(char) if char in _ALWAYS else char for char in line]
    if out and line[0] in _AT_START:
        out[0] = _ref(line[0])
    return "".join(out)


# Looked up once: pybtex's ``render_as`` finds the backend through entry points on every call, which is slow.
_PLAIN = find_plugin("pybtex.backends", "text")()


def plain(rich: BaseText) -> str:
    """pybtex rich text rendered as plain text."""
    return str(rich.render(_PLAIN))


def md_code(text: object) -> str:
    """``text`` as an inline code span (Markdown shows code literally; only the backtick fence needs care).

    >>> md_code("data/results/a_b.json")
    '`data/results/a_b.json`'
    >>> md_code("a ` b")
    '``a ` b``'
    """
    line = " ".join(str(text).split())
    if not line or "|" in line:  # a pipe would still split a table cell; show it as escaped text instead
        return md_text(line)
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", line)), default=0) + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{ticks}{pad}{line}{pad}{ticks}"


@functools.lru_cache(maxsize=4096)
def latex_text(text: str) -> str:
    """A BibTeX field as plain text: braces that protect case are dropped (``{LLM}s`` -> ``LLMs``)."""
    return plain(Text.from_latex(text))


def safe_url(url: str) -> str | None:
    """An http(s) URL fit for a Markdown link target, or None for anything else (``javascript:``...)."""
    url = url.strip()
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    # Percent-encode what could end the link early or break out of it: spaces, parentheses, quotes, <>.
    return quote(url, safe=":/?#@!$&*+,;=%~-._")


def md_link(text: str, target: str) -> str:
    """A Markdown link whose text is shown literally; ``target`` is a URL or a page-relative path."""
    return f"[{md_text(text)}]({target})"


def relative(from_page: str, to_path: str) -> str:
    """The link from docs-relative page ``from_page`` to docs-relative ``to_path``.

    >>> relative("generated/papers/a.md", "generated/methods/b.md")
    '../methods/b.md'
    """
    return posixpath.relpath(to_path, posixpath.dirname(from_page) or ".")


def fence(code: str, language: str = "") -> str:
    """A fenced code block longer than any run of backticks inside ``code``, so it cannot be closed early."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{code.rstrip()}\n{ticks}"


def fmt_number(value: object, digits: int = 3) -> str:
    """A number for a table: integers as they are, floats to ``digits`` significant figures.

    >>> [fmt_number(x) for x in (96, 0.9270833, 7.63e-06, 1234.5, 1.0, float("nan"), None)]
    ['96', '0.927', '7.63e-06', '1,234', '1', 'n/a', 'n/a']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):  # a record may put anything where a number usually is
        return md_text(value if isinstance(value, str) else json.dumps(value, default=str))
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if abs(value) < 1e-12:  # floating-point dust (a Wilson bound of 3e-18) is zero
        return "0"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.{max(digits - 1, 0)}e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def fmt_percent(value: float | None, decimals: int = 0) -> str:
    """A rate in [0, 1] as a percentage: ``0.59375`` -> ``59%``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.{decimals}f}%"
