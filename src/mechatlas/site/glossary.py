"""The glossary: hover definitions on every page and a Glossary page, from ``prose/glossary.yaml``.

Each page gets Markdown ``abbr`` definitions (``*[KL]: ...``) appended, so the builder wraps every
occurrence of a term in ``<abbr title="...">``; the Glossary page lists the terms in order.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

import yaml

from mechatlas.errors import ConfigError
from mechatlas.markdown import md_text, md_text_with_math

GLOSSARY_PAGE = "generated/glossary.md"


@functools.lru_cache(maxsize=1)
def terms() -> dict[str, str]:
    """Term -> definition (one line each), in file order."""
    source = importlib.resources.files("mechatlas.site").joinpath("prose", "glossary.yaml")
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError("mechatlas/site/prose/glossary.yaml: every entry must be `term: definition`")
    return {str(k): " ".join(v.split()) for k, v in data.items()}


def _attribute(text: str) -> str:
    """A definition as an HTML attribute value: the abbr extension puts it in ``title="..."``."""
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str) -> str:
    """A definition for a hover title, which cannot show math: sentences with a formula are left out."""
    return " ".join(sentence for sentence in re.split(r"(?<=\.)\s+", text) if "$" not in sentence)


def abbreviations() -> str:
    """The ``*[term]: definition`` lines every page ends with."""
    lines = [f"*[{term}]: {_attribute(_plain(text))}" for term, text in terms().items()]
    return "\n" + "\n".join(lines) + "\n"


def glossary_page(header: list[str]) -> str:
    """The Glossary page: every term with its definition, alphabetically."""
    lines = [*header, "Terms used on this site. Hover over one on any page for its definition.", ""]
    for term, text in sorted(terms().items(), key=lambda item: item[0].lower().lstrip("Δ")):
        lines += [f"**{md_text(term)}**", f": {md_text_with_math(text)}", ""]
    return "\n".join(lines)
