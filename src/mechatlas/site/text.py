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
import posixpath
import re
from urllib.parse import quote, urlsplit

from pybtex.plugin import find_plugin
from pybtex.richtext import BaseText, Text


def prose(name: str) -> str:
    """The paragraphs of ``mechatlas/site/prose/<name>.md``, each on one line, separated by a blank line.

    Line breaks inside a paragraph are only for reading the file; a page shows each paragraph as one
    line, as if it had been written in the page code.
    """
    source = importlib.resources.files("mechatlas.site").joinpath("prose", f"{name}.md")
    text = source.read_text(encoding="utf-8")
    return "\n\n".join(" ".join(part.split()) for part in re.split(r"\n\s*\n", text.strip()))


# Looked up once: pybtex's ``render_as`` finds the backend through entry points on every call, which is slow.
_PLAIN = find_plugin("pybtex.backends", "text")()


def plain(rich: BaseText) -> str:
    """pybtex rich text rendered as plain text."""
    return str(rich.render(_PLAIN))


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


def relative(from_page: str, to_path: str) -> str:
    """The link from docs-relative page ``from_page`` to docs-relative ``to_path``.

    >>> relative("generated/papers/a.md", "generated/methods/b.md")
    '../methods/b.md'
    """
    return posixpath.relpath(to_path, posixpath.dirname(from_page) or ".")
