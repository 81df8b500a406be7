"""Starting a blog-series post: a dated file with the front matter the blog plugin and the checks expect.

``mechatlas site post "Title" --category Replications`` writes ``pages/blog/posts/<date>-<slug>.md``;
the categories must be among ``categories_allowed`` in ``mkdocs.yml`` (an unknown one fails the build
anyway, so it is refused here first).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from mechatlas.errors import ConfigError
from mechatlas.experiments import registry
from mechatlas.io import write_text

TEMPLATE = """\
---
date: {date}
authors: [{author}]
categories: [{categories}]
tags: []
---

# {title}

One paragraph that says what the post reports; it is the excerpt on the blog's index.

<!-- more -->

Cite papers as [@arditi2024refusal]. Quote results from their records, never by hand:
{{{{ metric("{experiment}", "organism", "{metric}", fmt="pct_ci") }}}}
(copy dotted paths from a result page). Embed the pipeline's figures, numbered and captioned:

{{{{ figure("{experiment}", "organism", "{figure}") }}}}
"""


def slugify(title: str) -> str:
    """``Is refusal one direction?`` -> ``is-refusal-one-direction``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "post"


def allowed_categories(config_file: Path) -> list[str]:
    """The blog plugin's ``categories_allowed`` in ``mkdocs.yml``."""
    config = yaml.load(config_file.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
    for plugin in config.get("plugins", []):
        if isinstance(plugin, dict) and "blog" in plugin:
            return list((plugin["blog"] or {}).get("categories_allowed", []))
    return []


def write_post_stub(
    title: str,
    categories: Sequence[str],
    *,
    posts_dir: Path = Path("pages/blog/posts"),
    config_file: Path = Path("mkdocs.yml"),
    author: str = "mechatlas",
    date: dt.date | None = None,
) -> Path:
    """Write a new post's stub and return its path; refuses unknown categories and existing files."""
    allowed = allowed_categories(config_file)
    unknown = [c for c in categories if c not in allowed]
    if unknown:
        raise ConfigError(
            f"{config_file}: category {unknown[0]!r} is not in the blog's categories_allowed "
            f"({', '.join(allowed)}); use one of those, or add it there"
        )
    day = date or dt.date.today()
    path = posts_dir / f"{day.isoformat()}-{slugify(title)}.md"
    if path.exists():
        raise ConfigError(f"{path} already exists; choose another title or edit that post")
    example = registry.example()
    text = TEMPLATE.format(
        date=day.isoformat(),
        author=author,
        categories=", ".join(categories),
        title=title,
        experiment=example.name if example else "<experiment>",
        metric=example.example_metric if example else "<dotted.path>",
        figure=(example.example_figure or "<figure>") if example else "<figure>",
    )
    write_text(path, text)
    return path
