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


# --- A record's own sentences (verdict reasons and rules), made readable where they are shown ---------
# The experiments write these once, with fixed formats ("23 [21.23, 24.00]", "9.30e-06", code names
# such as "label_permuted"); the records are kept as written and the site rewrites only the forms below,
# never a number's value. Rates written as proportions stay as they are: the sentence alone does not
# say which numbers are rates, and the record's own tables show them as percentages.

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)e([+-]?)0*(\d+)(?![\w.])")
_NUMBER = r"-?\d+(?:\.\d+)?"
_COUNT_INTERVAL = re.compile(rf"(?<![\w.+\-])(\d+) \[({_NUMBER}), ({_NUMBER})\]")
_JUDGES = re.compile(r" ?\[judge (\w+); other judges: ([^\]]*)\]")
_CODE_NAME = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
# Names the records use, in words (the judges as the glossary names them; the causal sweep's controls).
SPELLED = {
    "substring": "substring judge",
    "first_token": "top-token judge",
    "logit": "first-token judge",
    "label_permuted": "label-permuted directions",
    "harmless_pcs": "harmless principal components",
    "interval_unit": "interval unit",
}


def _judges(match: re.Match[str]) -> str:
    """``[judge substring; other judges: logit: replicated]`` -> ``(substring judge; first-token judge:
    replicated)``."""
    others = re.sub(r"\b(\w+): ", lambda m: f"{SPELLED.get(m.group(1), m.group(1))}: ", match.group(2))
    return f" ({SPELLED.get(match.group(1), match.group(1))}; {others})"


def judge_name(judge: str) -> str:
    """A judge as the glossary names it: ``substring`` -> ``substring judge``, ``first_token`` ->
    ``top-token judge``; a name the glossary lacks gets ``judge`` after it."""
    return SPELLED.get(judge, f"{judge.replace('_', ' ')} judge")


def without_judges(text: str) -> str:
    """A record's reason without its ``[judge ...; other judges: ...]`` ending (for a page that shows the
    verdict under each judge beside it)."""
    return _JUDGES.sub("", text)


def readable_record_text(text: str) -> str:
    """A sentence from a record as a reader reads it (plain text: escape it with ``md_text`` to show it).

    A count with an interval gets the digits its interval allows (the site's one rule,
    ``mechatlas.markdown.fmt_estimate``), powers of ten are written as such, the judges are named as the
    glossary names them, and code names are spelled out.

    >>> readable_record_text("spectral k 23 [21.23, 24.00]; causal k 1 [1.00, 1.00]")
    'spectral k 23.0 [21.2, 24.0]; causal k 1 [1, 1]'
    >>> readable_record_text("max |Δlogit| = 9.30e-06 (tolerance 1e-04) [judge substring; other judges: logit: replicated]")
    'max |Δlogit| = 9.30×10⁻⁶ (tolerance 1×10⁻⁴) (substring judge; first-token judge: replicated)'
    >>> readable_record_text("controls: label_permuted 1.00 [1.00, 1.00], harmless_pcs 0.98 [0.96, 1.00]")
    'controls: label-permuted directions 1.00 [1.00, 1.00], harmless principal components 0.98 [0.96, 1.00]'
    """
    from mechatlas.markdown import fmt_estimate

    text = _JUDGES.sub(_judges, text)
    text = _COUNT_INTERVAL.sub(
        lambda m: fmt_estimate(int(m.group(1)), [float(m.group(2)), float(m.group(3))]), text
    )
    text = _SCIENTIFIC.sub(
        lambda m: (
            f"{m.group(1)}×10{(('-' if m.group(2) == '-' else '') + m.group(3)).translate(_SUPERSCRIPT)}"
        ),
        text,
    )
    return _CODE_NAME.sub(lambda m: SPELLED.get(m.group(0), m.group(0).replace("_", " ")), text)
