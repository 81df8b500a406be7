"""One source, two builders: the same docs folder built by MkDocs Material and by Zensical gives the same
pages, the same links and images in each page's content, and the same numbers.

The allowed differences are listed here, with why: files that only one builder writes and that are not
pages (MkDocs's ``tags.json``, each builder's own theme assets and search index). Pages must match one
for one. Zensical is a dev dependency (constraints.txt pins it); without it the build comparison is
skipped, saying how to install it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechatlas.site.build import build_site, read_config, search_options_for, zensical_executable
from mechatlas.site.compare import compare_builds, read_page
from site_fixture import REAL_RECORDS, build_fixture_project, copy_real_project, write_pages

REPO = Path(__file__).resolve().parents[1]
needs_zensical = pytest.mark.skipif(
    zensical_executable() is None,
    reason="zensical is not installed: `pip install -c constraints.txt -e '.[dev]'`",
)
pytestmark = pytest.mark.xdist_group("site-builders")

# Pages that may exist in one build only. None today: both builders write every page, the blog's
# archive and category pages included. Non-page files (assets, search index, tags.json) are not compared.
ALLOWED_PAGES: frozenset[str] = frozenset()


def _both(project: Path) -> tuple[Path, Path]:
    first = build_site(project / "mkdocs.yml", project / "site-mkdocs")
    second = build_site(project / "mkdocs.yml", project / "site-zensical", builder="zensical")
    return first, second


@needs_zensical
def test_the_fixture_site_builds_the_same_with_mkdocs_and_zensical(tmp_path: Path) -> None:
    first, second = _both(write_pages(build_fixture_project(tmp_path)))
    comparison = compare_builds(first, second, allowed_pages=ALLOWED_PAGES)
    assert comparison.problems() == []
    assert comparison.compared >= 10
    home = read_page(second / "index.html", "")
    assert home.words > 20 and home.links  # the comparison read real content, not an empty shell
    # Material's search: a tag weighs no more than a title word, so the boost of method and result pages
    # (front matter) lifts them above the papers tagged with the words they are named by.
    index = json.loads((first / "search/search_index.json").read_text(encoding="utf-8"))
    fields = index["config"]["fields"]
    assert fields["tags"]["boost"] <= fields["title"]["boost"], fields
    boosted = {doc["location"].split("#")[0] for doc in index["docs"] if doc.get("boost", 1) > 1}
    assert "generated/methods/child-method/" in boosted
    assert any(page.startswith("generated/results/") for page in boosted)
    assert not any(page.startswith("generated/papers/") for page in boosted)


def test_material_only_search_options_are_dropped_for_zensical_and_kept_for_mkdocs() -> None:
    plugins = read_config(REPO / "mkdocs.yml")["plugins"]
    search = next(p["search"] for p in plugins if isinstance(p, dict) and "search" in p)
    assert "fields" in search  # the weights mkdocs.yml sets for Material
    assert search_options_for("mkdocs", plugins) == plugins
    for_zensical = search_options_for("zensical", plugins)
    assert "search" in for_zensical and len(for_zensical) == len(plugins)
    assert search_options_for("zensical", [{"search": {"fields": {}, "separator": "[ ]+"}}, "tags"]) == [
        {"search": {"separator": "[ ]+"}},
        "tags",
    ]


def test_the_comparison_catches_a_changed_number_a_missing_page_and_a_moved_link(tmp_path: Path) -> None:
    def page(body: str) -> str:
        return f"<html><body><nav><a href='/x/'>nav 1</a></nav><article>{body}</article></body></html>"

    for name, body in (("a", "Refusal 99% <a href='../b/'>b</a>"), ("b", "n = 96")):
        for site in ("one", "two"):
            (tmp_path / site / name).mkdir(parents=True)
            (tmp_path / site / name / "index.html").write_text(page(body))
    assert compare_builds(tmp_path / "one", tmp_path / "two").problems() == []
    (tmp_path / "two/a/index.html").write_text(page("Refusal 98% <a href='../c/'>b</a>"))
    (tmp_path / "two/c").mkdir()
    (tmp_path / "two/c/index.html").write_text(page(""))
    problems = compare_builds(tmp_path / "one", tmp_path / "two").problems()
    assert any("numbers differ" in p and "99%" in p for p in problems)
    assert any("links differ" in p and "c/" in p for p in problems)
    assert "page only in the second build: c/" in problems
    assert (
        compare_builds(tmp_path / "one", tmp_path / "two", allowed_pages=frozenset({"c/"})).only_second == []
    )


@needs_zensical
@pytest.mark.skipif(
    not all(record.exists() for record in REAL_RECORDS),
    reason="no study results yet: run `make run` to build the real site",
)
def test_the_real_site_builds_the_same_with_mkdocs_and_zensical(tmp_path: Path) -> None:
    first, second = _both(copy_real_project(tmp_path))
    comparison = compare_builds(first, second, allowed_pages=ALLOWED_PAGES)
    assert comparison.problems() == []
    assert comparison.compared > 100
