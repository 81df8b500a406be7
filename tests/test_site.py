"""Tests for the survey site: escaping, citations, macros, result pages and their provenance, the build.

Units run on the fixture project in ``site_fixture`` (three papers, one of them hostile); one test builds
the fixture site with ``mkdocs build --strict``, and one builds the real site when the study's results
are there (after ``make run``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
from typer.testing import CliRunner

from mechatlas.cli import app
from mechatlas.errors import ArtifactError, ConfigError, LiteratureError
from mechatlas.literature import load_library
from mechatlas.markdown import fmt_estimate, fmt_number, md_code, md_text
from mechatlas.site.build import build_site, check_literature, expand_nav
from mechatlas.site.citations import CitationStyle, MacroContext, SiteError, citation_labels, render_page
from mechatlas.site.pages import Site, site_pages
from mechatlas.site.posts import write_post_stub
from mechatlas.site.records import Result, provenance_gaps, read_result, read_results
from mechatlas.site.sources import front_matter
from mechatlas.site.tables import grid, headline, render_metrics
from mechatlas.site.text import readable_record_text, safe_url
from site_fixture import (
    EXPERIMENT_RECORD,
    IMG,
    LINK,
    REAL_RECORDS,
    SCRIPT,
    build_fixture_project,
    copy_real_project,
    experiment_record,
    write_json,
    write_pages,
)

REPO = Path(__file__).resolve().parents[1]
HOSTILE = [
    SCRIPT,
    IMG,
    LINK,
    '{: onclick="window.__pwned=4" }',
    "# a heading",
    "1. a list",
    "`code` and *emphasis* and [@key] and {{ metric('a', 'b', 'c') }}",
    "??? note",
    "<!-- comment -->&amp;",
]
# The Markdown extensions the site enables (mkdocs.yml), so escaping is tested against the real parser.
EXTENSIONS = ["admonition", "tables", "toc", "pymdownx.details", "pymdownx.superfences"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_project(tmp_path_factory.mktemp("site"))


def read_project_results(project: Path) -> list[Result]:
    return read_results(
        project / "data/results",
        project_root=project,
        docs_dir=project / "reports",
        figures_root=project / "reports/figures",
        dvc_lock=project / "dvc.lock",
    )


@pytest.fixture(scope="module")
def site(project: Path) -> Site:
    return Site(load_library(project / "literature"), read_project_results(project))


@pytest.fixture(scope="module")
def pages(site: Site) -> dict[str, str]:
    return site_pages(site)


def render(text: str) -> str:
    return markdown.markdown(text, extensions=EXTENSIONS)


class _Markup(HTMLParser):
    """Collects every element and attribute that could run code or load something."""

    def __init__(self) -> None:
        super().__init__()
        self.active: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = dict(attrs).get("src") or ""
        if tag == "img" and re.fullmatch(r"(\.\./)*figures/[\w/-]+\.png", src):
            pass  # a pipeline figure, placed by the page generator
        elif tag in ("script", "img", "iframe", "object", "embed", "svg", "style", "link"):
            self.active.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or (
                name in ("href", "src") and (value or "").strip().lower().startswith("javascript")
            ):
                self.active.append(f"{tag} {name}={value}")


def active_markup(html: str) -> list[str]:
    parser = _Markup()
    parser.feed(html)
    return parser.active


# --- Escaping --------------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_contributed_text_renders_as_the_literal_characters_and_nothing_else(hostile: str) -> None:
    html = (
        render(f"Summary: {md_text(hostile)}")
        + render(md_text(hostile))
        + render(f"| a |\n|---|\n| {md_text(hostile)} |")
    )
    assert active_markup(html) == []
    assert set(re.findall(r"<(\w+)", html)) <= {"p", "table", "thead", "tbody", "tr", "th", "td"}, html
    # What a reader sees is the text as written (entities decoded, tags stripped).
    assert " ".join(hostile.split()) in unescape(re.sub(r"<[^>]+>", "", html))


def test_code_spans_show_text_literally_and_survive_backticks() -> None:
    assert render(md_code("a_b <x> `c`")).count("<code>") == 1
    assert "&lt;x&gt;" in render(md_code("a_b <x> `c`"))
    assert md_code("a | b") == md_text("a | b")  # a pipe would split a table cell


def test_only_http_urls_survive() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url(" data:text/html,x") is None
    assert safe_url("https://example.org/a b(c)") == "https://example.org/a%20b%28c%29"


def test_numbers_are_short_and_floating_point_dust_is_zero() -> None:
    assert [fmt_number(x) for x in (0.59375, 3.47e-18, 12345, 7.6e-06)] == [
        "0.594",
        "0",
        "12,345",
        "7.60×10⁻⁶",
    ]
    # One rule for a value with its interval: the interval's width picks the digits; rates are percentages.
    assert fmt_estimate(0.0599, [0.0316, 0.0947]) == "0.06 [0.03, 0.09]"
    assert fmt_estimate(0.99, [0.94, 0.998], rate=True) == "99% [94%, 100%]"
    assert fmt_estimate(29.0, [27.0, 29.0]) == "29 [27, 29]"
    assert fmt_estimate(-0.0001, [-0.12, 0.1]) == "0.00 [-0.12, 0.10]"
    assert fmt_number(-0.0) == "0" and fmt_number(0.123456789, digits=12) == "0.123457"


def test_a_records_sentences_are_shown_readably_without_changing_a_value() -> None:
    # A count with an interval written by the experiment at two fixed decimals gets the interval's digits.
    assert readable_record_text("spectral k by layer 1: 23 [21.23, 24.00], 2: 23 [22.00, 25.00]") == (
        "spectral k by layer 1: 23.0 [21.2, 24.0], 2: 23 [22, 25]"
    )
    assert readable_record_text("causal k 1 [1.00, 1.00]") == "causal k 1 [1, 1]"
    # Powers of ten, the judges by their glossary names, code names in words.
    assert readable_record_text("max |Δlogit| = 9.30e-06 (tolerance 1e-04)") == (
        "max |Δlogit| = 9.30×10⁻⁶ (tolerance 1×10⁻⁴)"
    )
    assert readable_record_text("ΔCE +0.048 [judge substring; other judges: logit: not replicated]") == (
        "ΔCE +0.048 (substring judge; first-token judge: not replicated)"
    )
    assert readable_record_text("controls: label_permuted 1.00, some_new_control 0.5") == (
        "controls: label-permuted directions 1.00, some new control 0.5"
    )
    # Everything else is left as the record wrote it: rates as proportions (the sentence does not say
    # which numbers are rates), signed and negative values, intervals of non-counts.
    kept = "baseline 0.99, ablation 0.00 [0.00, 0.00]; gap +0.00 [0.00, 0.00]; change -0.034 [-0.07, -0.01]"
    assert readable_record_text(kept) == kept
    assert readable_record_text("layer 12 of 24, e.g. 3e5x") == "layer 12 of 24, e.g. 3e5x"


# --- Citations -------------------------------------------------------------------------------------


def style_and_macros(project: Path) -> tuple[CitationStyle, MacroContext]:
    library = load_library(project / "literature")
    return CitationStyle.from_bibliography(library.bibliography), MacroContext(project / "data/results")


def cite(project: Path, text: str, first_line: int = 1) -> str:
    style, macros = style_and_macros(project)
    return render_page(
        text,
        file="reports/blog/posts/p.md",
        style=style,
        paper_link=lambda key: f"../papers/{key}.md",
        macros=macros,
        first_line=first_line,
    )


def test_a_citation_becomes_an_author_year_link_and_a_formatted_reference(project: Path) -> None:
    out = cite(project, "As shown [@alpha2024first] and [see @beta2023second, p. 3].\n")
    assert "([Alpha, 2024](../papers/alpha2024first.md))" in out
    assert "(see [Beta and Gamma, 2023](../papers/beta2023second.md), p. 3)" in out
    references = out.split("## References", 1)[1]
    assert (
        "Ann Alpha\\. First paper about alpha\\. arXiv preprint, 2024\\." in references
    )  # pybtex, plain style
    assert "[arXiv:2401\\.00001](https://arxiv.org/abs/2401.00001)" in references
    assert references.index("Alpha") < references.index("Beta")


def test_a_group_cites_several_papers_and_three_authors_are_et_al(project: Path) -> None:
    out = cite(project, "[@alpha2024first; @evil2025script]\n")
    assert (
        "[Alpha, 2024](../papers/alpha2024first.md); [Evil et al., 2025](../papers/evil2025script.md)" in out
    )


def test_hostile_bibliography_fields_are_escaped_and_a_javascript_url_is_dropped(project: Path) -> None:
    html = render(cite(project, "[@evil2025script]\n"))
    assert active_markup(html) == [] and "javascript:" not in html
    assert "Scripts &lt;/title&gt;&lt;script&gt;window.__pwned=5&lt;/script&gt; in Titles" in html


def test_citations_in_code_are_left_alone(project: Path) -> None:
    text = "Inline `[@nokey]` here.\n\n```text\n[@nokey] {{ metric('x', 'y', 'z') }}\n```\n"
    assert cite(project, text) == text


def test_an_unknown_key_fails_with_the_file_and_line(project: Path) -> None:
    with pytest.raises(
        SiteError,
        match=r"^reports/blog/posts/p\.md:7: citation of `alpah2024first`.*did you mean `alpha2024first`",
    ):
        cite(project, "one\n\ntwo [@alpha2024first]\n\nthree [@alpah2024first]\n", first_line=3)


def test_lines_are_counted_from_the_top_of_the_file_despite_front_matter() -> None:
    head, body, before = front_matter("---\ndate: 2026-01-01\n---\n\n# Title\n\nBody\n")
    assert head == "---\ndate: 2026-01-01\n---\n" and body.startswith("\n# Title") and before == 3
    assert front_matter("# Title\n") == ("", "# Title\n", 0)


def test_labels_that_collide_get_letters(project: Path) -> None:
    library = load_library(project / "literature")
    labels = citation_labels(library.bibliography)
    assert labels == {
        "alpha2024first": "Alpha, 2024",
        "beta2023second": "Beta and Gamma, 2023",
        "evil2025script": "Evil et al., 2025",
    }


def test_the_citation_syntax_agrees_with_the_literature_check(project: Path) -> None:
    post = project / "pages/blog/posts/typo.md"
    post.write_text("# t\n\nSee [@alpah2024first].\n")
    try:
        with pytest.raises(LiteratureError, match=r"typo\.md:3: citation of `alpah2024first`"):
            check_literature(
                project / "literature", project / "data/results", project / "pages", project / "ok"
            )
    finally:
        post.unlink()


# --- Macros ----------------------------------------------------------------------------------------


def test_metric_macros_read_the_record_at_build_time(project: Path) -> None:
    out = cite(
        project,
        '{{ metric("toy_experiment", "tiny", "refusal_rate.ablation.harmful") }}; '
        '{{ metric("toy_experiment", "tiny", "refusal_rate.ablation.harmful", fmt="pct_ci") }}; '
        '{{ metric("toy_experiment", "tiny", "threshold") }}; {{ organism("refusal_rate.harmful", fmt="pct") }}; '
        '{{ verdict("toy_experiment", "tiny", "alpha2024first", "alpha-claim") }}\n',
    )
    # A rate reads as a percentage in every format, its digits picked by its interval (one rule for the site).
    assert out.startswith("10% (95% CI 0%–20%, n = 50); 10% (95% CI 0%–20%, n = 50); 0.5; 96%; ")
    assert '<span class="verdict verdict-replicated">replicated</span>' in out


@pytest.mark.parametrize(
    ("macro", "message"),
    [
        (
            '{{ metric("toy_experiment", "tiny", "refusal_rate.ablaton.harmful") }}',
            "no metric `refusal_rate.ablaton.harmful`.*did you mean `ablation`",
        ),
        (
            '{{ metric("toy_experiment", "huge", "x") }}',
            "the result record .*huge/metrics.json does not exist",
        ),
        ('{{ metric("toy_experiment", "tiny", "refusal_rate", fmt="pct") }}', "format 'pct' needs a metric"),
        ('{{ metrc("a") }}', "unknown macro `metrc`"),
        ("{{ metric(open('x')) }}", "cannot read the arguments"),
        ('{{ verdict("toy_experiment", "tiny", "alpha2024first", "alpha-untested") }}', "no verdict on"),
    ],
)
def test_a_macro_that_does_not_resolve_fails_with_the_file_and_line(
    project: Path, macro: str, message: str
) -> None:
    with pytest.raises(SiteError, match=rf"^reports/blog/posts/p\.md:2: .*{message}"):
        cite(project, f"fine\n{macro}\n")


# --- Result records, provenance and dvc.lock ----------------------------------------------------------


def test_a_record_with_incomplete_provenance_is_refused(tmp_path: Path) -> None:
    record = experiment_record()
    del record["provenance"]["command"]
    record["provenance"]["model"] = {"name": "tiny", "id": "x"}
    path = tmp_path / "metrics.json"
    write_json(path, record)
    with pytest.raises(
        ArtifactError,
        match=r"x/metrics.json: incomplete provenance, missing `provenance.command`, `provenance.model.revision`",
    ):
        read_result(path, "toy_experiment", "tiny", display="x/metrics.json")
    assert (
        provenance_gaps(None)
        and provenance_gaps({})
        and not provenance_gaps(experiment_record()["provenance"])
    )


def test_every_result_page_shows_complete_provenance(site: Site, pages: dict[str, str]) -> None:
    page = pages["generated/results/toy_experiment/tiny/index.md"]
    provenance = page.split("## Provenance", 1)[1]
    for expected in (
        "`0123456789abcdef0123456789abcdef01234567`",
        "`feedfacecafe0001`",
        "`tests/tiny-model`",
        "`abc123`",
        "toy&#95;experiment &#61; 0",
        "snakemake --profile workflow/profiles/default data/results/toy_experiment/tiny/metrics.json",
        "Stage `toy_experiment`: inputs hash **`",
        "`data/models/tiny`",
        "`11111111111111111111111111111111.dir`",
        "dvc.lock's md5 of the record matches",
    ):
        assert expected in provenance, expected
    organism = pages["generated/results/organism/index.md"]
    assert "none (a local model)" in organism and "**Not yet recorded in dvc.lock**: no stage" in organism
    control_row = next(line for line in organism.splitlines() if line.startswith("| harmful |"))
    assert control_row.count("|") == 4 and "74" in control_row.split("|")[3], control_row  # 37/50 = 74%
    assert "bag-of-words control, test split" in organism and "<unigrams>" not in organism


def test_a_result_without_figures_has_no_figures_section_and_a_long_input_list_is_folded(
    site: Site, pages: dict[str, str]
) -> None:
    import dataclasses

    from mechatlas.site.records import LockedStage
    from mechatlas.site.result_pages import FOLD_DEPENDENCIES, figures_section, provenance_section

    organism = pages["generated/results/organism/index.md"]
    assert "## Figures" not in organism and "No figures" not in organism
    toy = next(r for r in site.results if r.experiment == "toy_experiment")
    assert figures_section(dataclasses.replace(toy, figures=())) == []
    deps = tuple((f"src/mechatlas/m{i}.py", f"{i:032x}") for i in range(FOLD_DEPENDENCIES + 1))
    stage = LockedStage(name="toy", cmd="run", deps=deps, outs=(("out.json", "f" * 32),))
    text = "\n".join(provenance_section(dataclasses.replace(toy, stages=(stage,))))
    html = render(text)
    folded = html.split("<details", 1)[1].split("</details>", 1)[0]
    assert f"The {len(deps)} files and folders the stage reads" in folded
    assert all(path in folded for path, _ in deps)  # one click away, all of them
    assert "out.json" in html.split("</details>", 1)[1]  # the outputs stay in view
    short = "\n".join(
        provenance_section(dataclasses.replace(toy, stages=(dataclasses.replace(stage, deps=deps[:2]),)))
    )
    assert "<details" not in render(short) and "m1.py" in short


def test_the_dashboard_leaves_out_optional_columns_no_row_fills() -> None:
    from mechatlas.site.dashboard import dashboard_table

    empty = [["p", "c", "v", "—", "—", "—"], ["p2", "c2", "v2", "—", "—", "n"]]
    assert dashboard_table(empty)[0] == "| paper | claim | verdict and what it covers | our numbers |"
    assert dashboard_table(empty)[2] == "| p | c | v | — |"  # a required column stays, dashes and all
    filled = [["p", "c", "v", "—", "—", "—"], ["p2", "c2", "v2", "—", "0.9 (Table 1)", "n"]]
    assert (
        "| paper reports |" in dashboard_table(filled)[0] and "sub-criteria" not in dashboard_table(filled)[0]
    )


def test_a_missing_dvc_lock_is_said_plainly(tmp_path: Path) -> None:
    project = write_pages(build_fixture_project(tmp_path, with_lock=False))
    page = (project / "reports/generated/results/toy_experiment/tiny/index.md").read_text()
    assert "**Not yet recorded in dvc.lock**: there is no dvc.lock in this build." in page


def test_a_stale_dvc_lock_entry_is_flagged(tmp_path: Path) -> None:
    project = build_fixture_project(tmp_path)
    record = experiment_record()
    record["metrics"]["threshold"] = 0.75  # remade after dvc.lock was written
    write_json(project / EXPERIMENT_RECORD, record)
    results = read_project_results(project)
    assert [r.lock_matches for r in results] == [None, False]
    assert (
        "dvc.lock records a different version"
        in site_pages(Site(load_library(project / "literature"), results))[
            "generated/results/toy_experiment/tiny/index.md"
        ]
    )


# --- Pages -----------------------------------------------------------------------------------------


def test_every_paper_method_and_result_has_a_page(site: Site, pages: dict[str, str]) -> None:
    assert {f"generated/papers/{key}.md" for key in site.library.papers} <= set(pages)
    assert {f"generated/methods/{node}.md" for node in site.library.taxonomy.nodes} <= set(pages)
    assert {r.page for r in site.results} == {
        "generated/results/organism/index.md",
        "generated/results/toy_experiment/tiny/index.md",
    }
    nav = json.loads(pages["generated/.nav.json"])
    assert nav["generated/results/index.md"] == [
        "generated/results/organism/index.md",
        "generated/results/toy_experiment/tiny/index.md",
    ]
    assert pages["generated/results/toy_experiment/tiny/metrics.json"] == (site.results[1].raw)


def test_a_paper_page_has_its_citation_bibtex_links_and_verdicts_per_claim(pages: dict[str, str]) -> None:
    page = pages["generated/papers/alpha2024first.md"]
    assert page.startswith("---\ntags:\n  - testing\n---\n\n# First Paper About Alpha\n")
    assert "```bibtex\n@misc{alpha2024first," in page
    assert "[arXiv:2401.00001](https://arxiv.org/abs/2401.00001)" in page
    claim = page.split("### Claim: alpha-claim", 1)[1].split("### Claim:", 1)[0]
    assert (
        "verdict-replicated" in claim and "../results/toy_experiment/tiny/index.md#claims-addressed" in claim
    )
    assert "*Not replicated by us yet.*" in page.split("### Claim: alpha-untested", 1)[1]


def test_a_method_page_places_the_method_and_lists_papers_and_results(pages: dict[str, str]) -> None:
    page = pages["generated/methods/child-method.md"]
    assert "[Survey](../survey.md) › [Root method](root-method.md) › **Child method**" in page
    assert "## Papers that use it" in page and "[Evil et al., 2025](../papers/evil2025script.md)" in page
    assert "[Toy experiment on tiny](../results/toy_experiment/tiny/index.md)" in page


def test_the_dashboard_lists_every_claim_with_a_replication(pages: dict[str, str]) -> None:
    page = pages["generated/replication.md"]
    assert "have a verdict from our runs" in page and "## Untested claims: work to pick up" in page
    assert "[alpha-claim](papers/alpha2024first.md#claim-alpha-claim)" in page
    assert "[evil-claim](papers/evil2025script.md#claim-evil-claim)" in page


def test_linked_claims_form_one_cluster_table_with_our_verdicts_beside_them(pages: dict[str, str]) -> None:
    # alpha-untested contradicts evil-claim and evil-claim supports alpha-claim: one cluster of three claims.
    index = pages["generated/clusters/index.md"]
    assert "[Claims linked to alpha2024first: alpha-claim](alpha2024first-alpha-claim.md) | 2 | 3 |" in index
    page = pages["generated/clusters/alpha2024first-alpha-claim.md"]
    rows = {
        row.split(" | ")[1].split("]")[0].lstrip("["): row
        for row in page.splitlines()
        if row.startswith("| [")
    }
    assert set(rows) == {"alpha-claim", "alpha-untested", "evil-claim"}
    assert "Section 2; Figure 1" in rows["alpha-claim"]
    assert "verdict-replicated" in rows["alpha-claim"] and "Toy experiment on tiny" in rows["alpha-claim"]
    assert (
        "supported by [Evil et al., 2025](../papers/evil2025script.md#claim-evil-claim)"
        in rows["alpha-claim"]
    )
    assert (
        "contradicts [Evil et al., 2025](../papers/evil2025script.md#claim-evil-claim)"
        in rows["alpha-untested"]
    )
    assert "*not tested yet*" in rows["alpha-untested"]
    assert "<script>" not in page and "&#60;script&#62;" in rows["evil-claim"]  # the location is escaped
    assert (
        "generated/clusters/alpha2024first-alpha-claim.md"
        in json.loads(pages["generated/.nav.json"])["generated/clusters/index.md"]
    )


def test_claims_with_testable_by_are_listed_as_open_for_replication(pages: dict[str, str]) -> None:
    page = pages["generated/open.md"]
    opened, tested = page.split("## Open", 1)[1].split("## Already tested", 1)
    assert "[alpha-untested](papers/alpha2024first.md#claim-alpha-untested)" in opened
    assert "[Child method](methods/child-method.md)" in opened
    assert "alpha-claim" not in page  # no testable_by: not listed
    assert "None yet." in tested


def test_a_paper_page_shows_each_claims_location_links_and_cluster(pages: dict[str, str]) -> None:
    claim = pages["generated/papers/alpha2024first.md"].split("### Claim: alpha-untested", 1)[1]
    assert "**Where in the paper.** Section 3" in claim
    assert "**Contradicts.** [Evil et al., 2025](evil2025script.md#claim-evil-claim): evil-claim" in claim
    assert "**Testable by.** [Child method](../methods/child-method.md)" in claim
    assert "Part of the cluster [Claims linked to alpha2024first: alpha-claim]" in claim


def test_no_generated_page_carries_raw_html_from_the_sources(pages: dict[str, str]) -> None:
    for path, text in pages.items():
        if path.endswith(".md"):
            assert active_markup(render(text.split("---\n", 2)[-1])) == [], path


def test_grids_and_folds_keep_metric_tables_readable() -> None:
    m = {"value": 0.5, "n": 10, "ci95": [0.2, 0.8]}
    two_by_two = grid({"baseline": {"harmful": m, "harmless": m}, "ablation": {"harmful": m, "harmless": m}})
    assert two_by_two is not None and two_by_two[0] == "|  | harmful (n = 10) | harmless (n = 10) |"
    wide = {"harmful": {f"domain{i}": m for i in range(12)}, "harmless": {"cooking": m}}
    transposed = grid(wide)
    assert (
        transposed is not None and len(transposed) == 2 + 13 + 1 and transposed[0].startswith("|  | harmful")
    )
    big = render_metrics({"per_domain": {f"d{i}": {"a": m, "b": m} for i in range(30)}})
    assert '??? note "Show all 60 values"' in big


def test_any_json_a_record_may_hold_renders_without_error() -> None:
    odd = {
        "matrix": [[1, 2], [3, 4]],
        "empty": {},
        "nothing": None,
        "partial_metric": {"value": 1},
        "odd_metric": {"value": [1, 2], "n": [3, 4], "ci95": [[0, 1], None]},
        "text_metric": {"value": "<i>high</i>", "n": "all", "ci95": ["a", "b"]},
        "curve": {"1": {"value": 0.5, "n": 3, "ci95": [0, 1]}, "15": {"value": 0.25, "n": 3, "ci95": None}},
        "rows": [{"a": [1, [2]], "b": {"c": "<b>"}}, {"a": None}],
        "deep": {"x": {"y": {"z": {"w": {"v": {"u": {"t": 1}}}}}}},
        "many": [{"k": i, "v": [i, {"nested": i}]} for i in range(30)],
    }
    html = render(render_metrics(odd))
    assert active_markup(html) == [] and "<b>" not in html


def test_experiment_headlines_pick_out_the_numbers_behind_the_verdicts() -> None:
    m = {"value": 0.5, "n": 10, "ci95": [0.2, 0.8]}
    refusal = {
        "verdict_judge": "substring",
        "refusal_rate": {
            "substring": {"baseline": {"harmful": m, "harmless": m}, "random_ablation": {"harmful": m}}
        },
        "conditions": {
            "random_ablation": {"direction": "random", "harmful": "ablation", "harmless": "ablation"}
        },
    }
    text = headline("refusal_direction", refusal) or ""
    assert (
        "| random direction ablated | ablation &#40;harmful&#41; / ablation &#40;harmless&#41;, random direction | control |"
        in text
    )
    table_rows = [
        {"layer": 1, "estimator": "spectral", "k": 3, "ci_low": 2, "ci_high": 4, "selected_position": True},
        {
            "layer": 1,
            "estimator": "causal",
            "k": None,
            "control": "not below threshold up to k=8",
            "selected_position": True,
        },
        {"layer": 2, "estimator": "spectral", "k": 5, "ci_low": 4, "ci_high": 6, "selected_position": False},
        {"layer": 0, "estimator": "spectral", "k": 0, "note": "all the same", "selected_position": True},
    ]
    dims = (
        headline("dimensionality", {"dimensionality": {"table": table_rows, "selected": {"position": -1}}})
        or ""
    )
    assert "| 1 | 3 [2, 4] | not below threshold up to k&#61;8 |" in dims and "| 2 |" not in dims
    assert "Layer 0: all the same; no estimate." in dims and "| 0 |" not in dims
    assert headline("refusal_direction", {"unexpected": "shape"}) is None  # the generic tables still show it


def test_nav_sections_list_the_generated_pages() -> None:
    nav = [{"Home": "index.md"}, {"Papers": "generated/papers/index.md"}, {"Blog": ["blog/index.md"]}]
    expanded = expand_nav(nav, {"generated/papers/index.md": ["generated/papers/a.md"]})
    assert expanded[1] == {"Papers": ["generated/papers/index.md", "generated/papers/a.md"]}
    assert expanded[0] == nav[0] and expanded[2] == nav[2]


def test_a_new_post_stub_has_valid_front_matter_and_refuses_unknown_categories(tmp_path: Path) -> None:
    import datetime as dt

    posts = tmp_path / "posts"
    path = write_post_stub(
        "Is refusal one direction?",
        ["Replications"],
        posts_dir=posts,
        config_file=REPO / "mkdocs.yml",
        date=dt.date(2026, 3, 1),
    )
    assert path == posts / "2026-03-01-is-refusal-one-direction.md"
    assert path.read_text().startswith(
        "---\ndate: 2026-03-01\nauthors: [mechatlas]\ncategories: [Replications]\n"
    )
    with pytest.raises(ConfigError, match="category 'Gossip' is not in the blog's categories_allowed"):
        write_post_stub("x", ["Gossip"], posts_dir=posts, config_file=REPO / "mkdocs.yml")


# --- Building --------------------------------------------------------------------------------------


def test_the_cli_generates_and_builds_the_fixture_site_strictly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = build_fixture_project(tmp_path)
    monkeypatch.chdir(project)
    runner = CliRunner()
    done = runner.invoke(app, ["site", "pages"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["site", "build"])
    assert done.exit_code == 0, done.output
    post = (project / "site/blog/2026/01/15/a-fixture-post-about-alpha/index.html").read_text()
    assert 'src="../../../../../figures/toy_experiment/tiny/refusal_rates.png"' in post
    assert '<h2 id="references">References' in post and "Alpha, 2024</a>" in post
    result = (project / "site/generated/results/toy_experiment/tiny/index.html").read_text()
    assert '<a href="../../../../figures/toy_experiment/tiny/">figure notes</a>' in result

    # `mechatlas site serve` (what `make site` runs) prints the URL and serves the built site.
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "mechatlas.cli", "site", "serve", "--port", "0", "--no-rebuild"]
    server = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        announced = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", announced)
        assert url, announced
        with urllib.request.urlopen(url.group(0) + "generated/papers/alpha2024first/", timeout=10) as page:
            assert b"First Paper About Alpha" in page.read()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_post_with_an_unknown_key_fails_the_build_with_its_file_and_line(tmp_path: Path) -> None:
    project = build_fixture_project(tmp_path)
    post = project / "pages/blog/posts/fixture-post.md"
    post.write_text(post.read_text().replace("[@alpha2024first], on", "[@alpah2024first], on"))
    with pytest.raises(
        SiteError, match=r"pages/blog/posts/fixture-post\.md:10: citation of `alpah2024first`"
    ):
        write_pages(project, dvc_lock=False)
    assert not (project / "reports/blog").exists()  # nothing half-written


def test_an_unknown_blog_category_fails_the_build(tmp_path: Path) -> None:
    project = build_fixture_project(tmp_path)
    post = project / "pages/blog/posts/fixture-post.md"
    post.write_text(post.read_text().replace("categories: [Replications]", "categories: [Gossip]"))
    write_pages(project, dvc_lock=False)
    with pytest.raises(SiteError, match="category 'Gossip' not in allow list"):
        build_site(project / "mkdocs.yml", project / "site")


@pytest.mark.skipif(
    not all(record.exists() for record in REAL_RECORDS),
    reason="no study results yet: run `make run` to build the real site",
)
def test_the_real_site_builds_strictly_with_the_posts_figures_and_citations(tmp_path: Path) -> None:
    site_dir = build_site(copy_real_project(tmp_path) / "mkdocs.yml", tmp_path / "site")
    library = load_library(tmp_path / "literature")
    missing = [
        f"paper {key}"
        for key in library.papers
        if not (site_dir / f"generated/papers/{key}/index.html").exists()
    ]
    missing += [
        f"method {node}"
        for node in library.taxonomy.nodes
        if not (site_dir / f"generated/methods/{node}/index.html").exists()
    ]
    for record in (tmp_path / "data/results").glob("*/*/metrics.json"):
        page = site_dir / "generated/results" / record.parent.parent.name / record.parent.name / "index.html"
        if not page.exists() or "Inputs recorded in dvc.lock" not in page.read_text():
            missing.append(f"result {record}")
    assert not missing, missing
    cluster = (site_dir / "generated/clusters/refusal-geometry/index.html").read_text()
    assert "arditi2024refusal" in cluster and "wollschlager2025geometry" in cluster
    assert 'class="verdict verdict-' in cluster  # our verdicts beside the papers' claims
    assert (site_dir / "generated/open/index.html").exists()
    posts = sorted((site_dir / "blog").glob("20*/*/*/*/index.html"))
    assert posts, "the blog series has a post"
    first = posts[0].read_text()
    assert '<h2 id="references">References' in first and 'class="citation"' in first
    assert re.search(
        r'<img alt="Figure 1: [^"]*" src="[./]*figures/refusal_direction/organism/[\w-]+\.(svg|png)"', first
    )


def test_the_repository_url_is_written_once_and_citation_cff_agrees() -> None:
    import yaml

    from mechatlas.site.build import repo_url

    url = repo_url(REPO / "mkdocs.yml")
    assert url and url.startswith("https://")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["authors"] and cff["title"]
    assert cff["repository-code"] == url


def test_a_figure_with_nothing_to_draw_is_said_in_words_and_a_real_sweep_is_kept() -> None:
    from mechatlas.experiments.dimensionality.headline import dimensionality_figure_notes

    def record(max_k: int, crossed: bool = True) -> dict[str, object]:
        sweep = {"spectral": {"max_k_evaluated": max_k, "crossed": crossed}, "random": {"max_k_evaluated": 1}}
        return {"causal": {"sweeps": {"0": {"degenerate": True}, "3": sweep}}}

    assert dimensionality_figure_notes(record(1))["causal_sweep"][0] == "replace"
    assert "causal_sweep" not in dimensionality_figure_notes(record(4))
    assert "causal_sweep" not in dimensionality_figure_notes(record(1, crossed=False))
    zero = {"value": 0.0, "ci95": [0.0, 0.02], "n": 160}
    cone = {"causal": {"cone": {"rates": {"harmful": {"ablate": {"a": zero, "span": zero}}}}}}
    assert dimensionality_figure_notes(cone)["cone"][0] == "note"
    cone["causal"]["cone"]["rates"]["harmful"]["ablate"]["a"] = {**zero, "value": 0.4}  # type: ignore[index]
    assert "cone" not in dimensionality_figure_notes(cone)


def test_math_is_rendered_to_mathml_when_pages_are_generated_and_code_is_left_alone(project: Path) -> None:
    from mechatlas.site.glossary import abbreviations, glossary_page

    text = cite(project, "Cost $\\Delta \\mathrm{CE} = x^2$ at \\$5; `$not math$`\n")
    assert "<math" in text and "<msup>" in text and "`$not math$`" in text and "\\$5" in text
    page = glossary_page(["# Glossary", ""])
    assert "<math" in page and "$" not in page.split("participation ratio")[1].split("**")[1]
    assert "$" not in abbreviations()  # hover titles cannot show math: those sentences are left out


def test_verdict_fields_newer_than_the_site_are_shown_and_their_absence_is_tolerated() -> None:
    from mechatlas.site.result_pages import sub_criteria

    assert sub_criteria({}) == "—"
    shown = sub_criteria(
        {
            "criteria": {"beats random": True, "halves the baseline": False},
            "judges": {"substring": "replicated", "logit": {"verdict": "partially"}},
            "pending_reason": "baseline refuses < 50%",
            "measures": ["ΔCE"],
        }
    )
    assert "beats random: passed" in shown and "halves the baseline: failed" in shown
    assert "substring judge: replicated" in shown and "first-token judge: partially" in shown
    assert "differs between judges" in shown
    agreed = sub_criteria({"judges": {"first_token": "replicated", "substring": "replicated"}})
    assert agreed == "top-token judge: replicated; substring judge: replicated"
    assert "pending: baseline refuses &#60; 50%" in shown and "measures: ΔCE" in shown
    assert (
        sub_criteria({"criteria": [{"name": "<b>x</b>", "passed": True}]})
        == "&#60;b&#62;x&#60;/b&#62;: passed"
    )


def test_a_result_page_shows_each_verdict_under_each_judge_in_its_own_column(pages: dict[str, str]) -> None:
    page = pages["generated/results/toy_experiment/tiny/index.md"]
    row = next(line for line in page.splitlines() if "alpha-claim" in line and "because" in line)
    assert "substring judge: replicated" in row and "first-token judge: partially" in row
    assert "**the verdict differs between judges**" in row
    assert "other judges" not in row and "FLIPS" not in row  # the reason does not repeat the column
    evil = next(
        line for line in page.splitlines() if "evil-claim" in line and "| " in line and "judge" in line
    )
    assert "differs" not in evil


def test_findings_follow_the_record_not_a_script() -> None:
    from mechatlas.experiments.dimensionality.headline import dimensionality_findings

    rate = {"value": 0.0, "ci95": [0.0, 0.02], "n": 160, "ci_method": "wilson"}
    high = {"value": 0.99, "ci95": [0.97, 1.0], "n": 160, "ci_method": "wilson"}

    def record(k: int | None) -> dict[str, object]:
        sweep = {
            "spectral": {"k": k, "curve": {"1": rate if k == 1 else high}},
            "random": {"curve": {"1": high}},
        }
        return {
            "dimensionality": {"table": []},
            "causal": {"selected_layer": 3, "baseline": {"harmful": high}, "sweeps": {"3": sweep}},
        }

    assert dimensionality_findings(record(1))[0].startswith("Yet causally one direction suffices")
    assert dimensionality_findings(record(4))[0].startswith("Causally, 4 top directions must be ablated")
    assert dimensionality_findings(record(None))[0].startswith("Causally, no number of top directions")


def test_the_organism_findings_weigh_the_word_counter_by_its_intervals() -> None:
    from mechatlas.organism.headline import organism_findings

    def rate(value: float, low: float, high: float) -> dict[str, object]:
        return {"value": value, "ci95": [low, high], "n": 300, "ci_method": "wilson"}

    organism = {"harmful": rate(0.99, 0.98, 1.0), "harmless": rate(0.01, 0.0, 0.02)}
    same = {"refusal_rate": organism, "lexical_control": {"refusal_rate": organism}}
    apart = {
        "refusal_rate": organism,
        "lexical_control": {
            "refusal_rate": {"harmful": rate(0.6, 0.55, 0.65), "harmless": rate(0.3, 0.25, 0.35)}
        },
    }
    assert "is enough to tell the prompts apart" in organism_findings(same)[1]
    assert "does not account for" in organism_findings(apart)[1]
