"""Tests for the literature knowledge base and its referee, ``mechatlas lit check``.

Each failing case builds a small literature directory in a temporary folder, breaks one thing, and
asserts the exact ``file:line: what — fix`` message. The last tests check the real repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from literature_fixture import BIB
from mechatlas.cli.lit import app as lit_app
from mechatlas.errors import LiteratureError
from mechatlas.literature import (
    Verdict,
    add_papers,
    check_library,
    entry_from_metadata,
    format_citation,
    load_library,
    replications_from_results,
)
from mechatlas.literature.papers import missing_numbers

REPO = Path(__file__).resolve().parents[1]

TAXONOMY = """\
nodes:
  - id: root-method
    name: Root method
    parent: null
    kind: concept
    granularity: model
    approach: bottom-up
    summary: A root node that groups the other nodes of this small test taxonomy together.
    references: [alpha2024first]
  - id: child-method
    name: Child method
    parent: root-method
    kind: interventional
    granularity: direction
    approach: top-down
    summary: A child node that edits one direction and watches what the model does next.
    references: [beta2023second]
"""

ALPHA = """\
methods: [root-method, child-method]
models: [Tiny model]
tags: [testing]
claims:
  - id: alpha-claim
    statement: Alpha holds.
    evidence: The first experiment.
    location: "Section 2; Figure 1"
replications: []
"""

BETA = """\
methods: [child-method]
models: []
tags: []
claims: []
replications: []
"""

METRICS = {
    "refusal_rate": {"value": 0.1, "ci": [0.05, 0.15]},
    "replicates": [{"paper": "alpha2024first", "claim": "alpha-claim", "verdict": "replicated"}],
    "methods": ["child-method"],
}


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small valid literature directory (and one result record), with the working directory at its root."""
    root = tmp_path / "literature"
    (root / "papers").mkdir(parents=True)
    (root / "references.bib").write_text(BIB)
    (root / "taxonomy.yaml").write_text(TAXONOMY)
    (root / "papers" / "alpha2024first.yaml").write_text(ALPHA)
    (root / "papers" / "beta2023second.yaml").write_text(BETA)
    write_metrics(tmp_path, "exp", "organism", METRICS)
    monkeypatch.chdir(tmp_path)
    return root


def write_metrics(base: Path, experiment: str, model: str, record: dict[str, object]) -> Path:
    path = base / "data" / "results" / experiment / model / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def problems_in(root: Path | str = "literature") -> list[str]:
    return [str(problem) for problem in check_library(root, "data/results", "reports")]


def test_the_small_library_passes(library: Path) -> None:
    assert problems_in() == []


def test_a_malformed_bibtex_entry_is_reported_at_its_line_and_the_rest_is_still_read(library: Path) -> None:
    broken = "@misc{delta2022broken,\n  title  = {Broken Entry}\n  author = {Delta, Dan},\n}\n\n"
    (library / "references.bib").write_text(broken + BIB)
    # The missing comma after the title is noticed on line 3. The two good entries after the broken one
    # are still read: otherwise their paper files would be reported as having no entry.
    assert problems_in() == [
        "literature/references.bib:3: malformed BibTeX entry `delta2022broken`: '}' expected — "
        "write it as `@type{key,` then one `field = {value},` per line, and close it with `}`"
    ]


def test_an_unclosed_bibtex_entry_points_at_the_line_that_opens_it(library: Path) -> None:
    (library / "references.bib").write_text(
        BIB.replace("{Second Paper About Beta},", "{Second Paper About Beta,")
    )
    assert problems_in() == [
        "literature/references.bib:10: malformed BibTeX entry `beta2023second`: it never closes "
        '(unbalanced braces or quotes) — close every `{` and `"`, and end the entry with `}`'
    ]


def test_an_unknown_method_id_is_reported_with_its_line(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(
        BETA.replace("[child-method]", "[quantum-dowsing]")
    )
    assert problems_in() == [
        "literature/papers/beta2023second.yaml:1: unknown method id `quantum-dowsing` — "
        "use a node id from literature/taxonomy.yaml, or add the node there"
    ]


def test_a_misspelt_method_id_gets_a_suggestion(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(BETA.replace("[child-method]", "[child-methd]"))
    assert problems_in() == [
        "literature/papers/beta2023second.yaml:1: unknown method id `child-methd` — did you mean "
        "`child-method`? use a node id from literature/taxonomy.yaml, or add the node there"
    ]


def test_the_same_paper_under_a_new_key_is_a_duplicate_by_arxiv_id(library: Path) -> None:
    copy = (
        "\n@misc{copy2024again,\n  title         = {A Retitled Copy},\n  author        = {Alpha, Ann},\n"
        "  howpublished  = {arXiv preprint},\n  year          = {2024},\n  eprint        = {2401.00001},\n"
        "  archivePrefix = {arXiv},\n}\n"
    )
    (library / "references.bib").write_text(BIB + copy)
    (library / "papers" / "copy2024again.yaml").write_text(BETA)
    assert problems_in() == [
        "literature/references.bib:18: `copy2024again` is the same paper as `alpha2024first` (line 1): "
        "same arXiv id — remove `copy2024again` and cite `alpha2024first` instead"
    ]


def test_the_same_paper_under_a_new_key_is_a_duplicate_by_normalised_title(library: Path) -> None:
    copy = (
        "\n@misc{copy2024first,\n  title        = {FIRST paper about {Alpha}!},\n  author       = {Alpha, Ann},\n"
        "  howpublished = {Some blog},\n  year         = {2024},\n  url          = {https://example.org/a},\n}\n"
    )
    (library / "references.bib").write_text(BIB + copy)
    (library / "papers" / "copy2024first.yaml").write_text(BETA)
    assert problems_in() == [
        "literature/references.bib:18: `copy2024first` is the same paper as `alpha2024first` (line 1): "
        "same title — remove `copy2024first` and cite `alpha2024first` instead"
    ]


def test_a_dangling_result_link_is_reported_in_the_result_record(library: Path) -> None:
    record = dict(METRICS, replicates=[{"paper": "nobody2020ghost", "claim": "x", "verdict": "pending"}])
    write_metrics(library.parent, "exp", "organism", record)
    # json.dumps(indent=2) writes the entry's "paper" key on line 11 of the file.
    assert problems_in() == [
        "data/results/exp/organism/metrics.json:11: `replicates.0.paper` names `nobody2020ghost`, which is not "
        "a paper in the literature — use a key from literature/references.bib, or add the paper with "
        "`mechatlas lit add`"
    ]


def test_a_result_naming_a_missing_claim_or_method_is_reported(library: Path) -> None:
    record = dict(
        METRICS,
        replicates=[{"paper": "alpha2024first", "claim": "beta-claim", "verdict": "not replicated"}],
        methods=["child-method", "telepathy"],
    )
    write_metrics(library.parent, "exp", "organism", record)
    assert problems_in() == [
        "data/results/exp/organism/metrics.json:11: `replicates.0.claim` is `beta-claim`, which "
        "`alpha2024first` does not have — use one of its claims (alpha-claim), or add the claim to "
        "literature/papers/alpha2024first.yaml",
        "data/results/exp/organism/metrics.json:18: unknown method id `telepathy` — use a node id from "
        "literature/taxonomy.yaml, or add the node there",
    ]


def test_a_cycle_in_the_taxonomy_is_reported_once_at_its_first_node(library: Path) -> None:
    (library / "taxonomy.yaml").write_text(TAXONOMY.replace("parent: null", "parent: child-method"))
    assert problems_in() == [
        "literature/taxonomy.yaml:4: the taxonomy has a cycle: root-method → child-method → root-method — "
        "make one of these nodes' `parent` point outside the cycle, so the chain ends at a root"
    ]


def test_an_orphan_taxonomy_node_is_reported(library: Path) -> None:
    (library / "taxonomy.yaml").write_text(TAXONOMY.replace("parent: root-method", "parent: lost-parent"))
    assert problems_in() == [
        "literature/taxonomy.yaml:12: node `child-method` has parent `lost-parent`, which is not a node "
        "(an orphan) — point `parent` at an existing node id, or add that node"
    ]


def test_a_yaml_syntax_error_is_reported_at_its_line(library: Path) -> None:
    (library / "papers" / "alpha2024first.yaml").write_text(
        ALPHA.replace("[root-method, child-method]", "[root")
    )
    # The parser notices on line 2 that the bracket opened on line 1 never closed; nothing else is reported.
    assert problems_in() == [
        "literature/papers/alpha2024first.yaml:2: YAML syntax error: while parsing a flow sequence that starts "
        "on line 1, expected ',' or ']', but got ':' — fix the YAML syntax (check indentation, colons and quotes)"
    ]


def test_a_claim_without_a_location_is_reported_at_its_line_with_the_fix(library: Path) -> None:
    (library / "papers" / "alpha2024first.yaml").write_text(
        ALPHA.replace('    location: "Section 2; Figure 1"\n', "")
    )
    assert problems_in() == [
        "literature/papers/alpha2024first.yaml:5: claim `alpha-claim` does not say where in the paper its "
        'evidence is — add `location: "Section 4.1; Figure 3"` under it: the paper\'s own section, figure or '
        "table numbers"
    ]


def test_an_empty_location_is_reported_at_the_location_line(library: Path) -> None:
    (library / "papers" / "alpha2024first.yaml").write_text(ALPHA.replace('"Section 2; Figure 1"', '" "'))
    [problem] = problems_in()
    assert problem.startswith(
        "literature/papers/alpha2024first.yaml:8: claim `alpha-claim` does not say where"
    )


def test_a_number_of_the_statement_that_the_evidence_lacks_is_reported_at_the_statement(
    library: Path,
) -> None:
    (library / "papers" / "alpha2024first.yaml").write_text(
        ALPHA.replace("Alpha holds.", "Alpha holds in 13 models up to 72B, at 0.8 accuracy.").replace(
            "The first experiment.", "The first experiment, on 13 models of up to 72B parameters."
        )
    )
    assert problems_in() == [
        "literature/papers/alpha2024first.yaml:6: claim `alpha-claim`: the statement says `0.8`, which its "
        "evidence does not — write in the evidence where the paper gives that number, or take it out of "
        "the statement"
    ]


@pytest.mark.parametrize(
    ("statement", "evidence", "missing"),
    [
        ("Holds in 13 models.", "Thirteen models.", ["13"]),
        ("Holds in 13 models.", "In 113 models.", ["13"]),  # a number, not a run of digits inside one
        ("Holds at 0.8.", "Holds at 0.85.", ["0.8"]),
        ("Holds in GPT-2 and Llama3, with L2 loss.", "Tested.", []),  # digits inside names are not numbers
        ("Holds at 72B and 1,000 prompts.", "72B model; 1,000 prompts.", []),
        ("Holds in 2 of 9 cases.", "9 cases, 2 of which hold.", []),
    ],
)
def test_the_numbers_of_a_statement_are_compared_as_numbers(
    statement: str, evidence: str, missing: list[str]
) -> None:
    assert missing_numbers(statement, evidence) == missing


def test_claim_links_must_name_an_existing_claim_of_another_paper(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(
        BETA.replace(
            "claims: []",
            "claims:\n  - id: beta-claim\n    statement: Beta holds.\n    evidence: An experiment.\n"
            "    location: Table 2\n"
            "    supports: [alpha2024first:alpha-claim, alpha2024first:alfa-claim, gamma2020:x-claim]\n"
            "    contradicts: [beta2023second:beta-claim, not a reference]\n"
            "    testable_by: [child-method, quantum-dowsing]",
        )
    )
    assert problems_in() == [
        "literature/papers/beta2023second.yaml:9: claim `beta-claim` supports `alpha2024first:alfa-claim`, "
        "but `alpha2024first` has no claim `alfa-claim` — use one of its claims (alpha-claim), or add the "
        "claim to literature/papers/alpha2024first.yaml",
        "literature/papers/beta2023second.yaml:9: claim `beta-claim` supports `gamma2020:x-claim`, but there "
        "is no paper `gamma2020` — use the bib key of a paper in literature/papers/",
        "literature/papers/beta2023second.yaml:10: claim `beta-claim` contradicts `beta2023second:beta-claim`, "
        "a claim of the same paper — `contradicts` links claims of different papers; remove it",
        "literature/papers/beta2023second.yaml:10: `contradicts` entry 'not a reference' of claim "
        "`beta-claim` is not `<bibkey>:<claim-id>` — write the other paper's bib key and its claim id, e.g. "
        "`arditi2024refusal:single-direction`",
        "literature/papers/beta2023second.yaml:11: claim `beta-claim` is testable by `quantum-dowsing`, which "
        "is not a taxonomy id — use a node id from literature/taxonomy.yaml, or add the node there",
    ]


BETA_LINKED = BETA.replace(
    "claims: []",
    "claims:\n  - id: beta-claim\n    statement: Beta holds.\n    evidence: An experiment.\n"
    "    location: Table 2\n    contradicts: [alpha2024first:alpha-claim]",
)


def test_linked_claims_make_a_cluster_named_by_its_seed(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(BETA_LINKED)
    (library / "clusters.yaml").write_text(
        "clusters:\n  - id: alpha-question\n    name: The alpha question\n"
        "    seed: beta2023second:beta-claim\n    summary: Does alpha hold?\n"
    )
    assert problems_in() == []
    [cluster] = load_library("literature").clusters()
    assert (cluster.id, cluster.name) == ("alpha-question", "The alpha question")
    assert cluster.claims == (("alpha2024first", "alpha-claim"), ("beta2023second", "beta-claim"))
    [link] = cluster.links
    assert (link.source, link.relation, link.target) == (
        ("beta2023second", "beta-claim"),
        "contradicts",
        ("alpha2024first", "alpha-claim"),
    )


def test_an_unlinked_or_missing_seed_and_a_second_name_for_one_cluster_are_reported(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(BETA_LINKED)
    (library / "clusters.yaml").write_text(
        "clusters:\n"
        "  - {id: first, name: First, seed: alpha2024first:alpha-claim, summary: S}\n"
        "  - {id: second, name: Second, seed: beta2023second:beta-claim, summary: S}\n"
        "  - {id: third, name: Third, seed: alpha2024first:no-such-claim, summary: S}\n"
    )
    assert problems_in() == [
        "literature/clusters.yaml:3: cluster `second` is the same cluster as `first` (their seeds are "
        "linked) — keep one name per cluster",
        "literature/clusters.yaml:4: seed `alpha2024first:no-such-claim` of cluster `third` is not a claim in "
        "the literature — use the bib key of a paper and one of its claim ids",
    ]
    (library / "papers" / "beta2023second.yaml").write_text(BETA)
    (library / "clusters.yaml").write_text(
        "clusters:\n  - {id: first, name: First, seed: alpha2024first:alpha-claim, summary: S}\n"
    )
    assert problems_in() == [
        "literature/clusters.yaml:2: seed `alpha2024first:alpha-claim` of cluster `first` has no `supports` or "
        "`contradicts` link — link it to a claim of another paper, or seed the cluster with a linked claim"
    ]


def test_a_schema_error_names_the_field_line_and_the_allowed_values(library: Path) -> None:
    (library / "taxonomy.yaml").write_text(TAXONOMY.replace("kind: interventional", "kind: magical"))
    assert problems_in() == [
        "literature/taxonomy.yaml:13: `nodes.1.kind` is 'magical' — use one of 'concept', 'observational', "
        "'interventional', 'dictionary-learning', 'circuit-discovery', 'automated-interpretation' or "
        "'training-time'"
    ]


def test_every_problem_is_listed_not_just_the_first(library: Path) -> None:
    (library / "taxonomy.yaml").write_text(TAXONOMY.replace("parent: null", "parent: child-method"))
    (library / "papers" / "beta2023second.yaml").write_text(
        BETA.replace("[child-method]", "[quantum-dowsing]")
    )
    (library / "papers" / "gamma2020orphan.yaml").write_text(BETA)
    lines = problems_in()
    assert len(lines) == 3
    assert [line.split(":")[0] for line in lines] == [
        "literature/papers/beta2023second.yaml",
        "literature/papers/gamma2020orphan.yaml",
        "literature/taxonomy.yaml",
    ]


def test_an_unused_bib_entry_and_a_paper_file_without_an_entry_are_both_reported(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").rename(library / "papers" / "beta2023secnd.yaml")
    assert problems_in() == [
        "literature/papers/beta2023secnd.yaml:1: this paper file is for `beta2023secnd`, which is not in "
        "references.bib — add its entry to literature/references.bib (`mechatlas lit add`), or rename the file "
        "to its bib key",
        "literature/references.bib:10: `beta2023second` has no paper file — create "
        "literature/papers/beta2023second.yaml (`mechatlas lit add` writes a stub), or remove the entry",
    ]


def test_a_hand_recorded_replication_must_agree_with_its_result_record(library: Path) -> None:
    replication = (
        "replications:\n  - {claim: alpha-claim, experiment: exp, model: organism, verdict: partially}\n"
    )
    (library / "papers" / "alpha2024first.yaml").write_text(ALPHA.replace("replications: []\n", replication))
    assert problems_in() == [
        "literature/papers/alpha2024first.yaml:10: verdict `partially` disagrees with "
        "data/results/exp/organism/metrics.json (replicated) — make the two agree; the result record is the "
        "source of truth"
    ]


def test_a_blog_citation_of_an_unknown_key_is_reported(library: Path) -> None:
    post = library.parent / "reports" / "blog" / "posts" / "first.md"
    post.parent.mkdir(parents=True)
    post.write_text(
        "# Title\n\nAs shown before [@alpha2024first; @alpha2024frist].\n\n```\n[@not-a-citation]\n```\n"
    )
    assert problems_in() == [
        "reports/blog/posts/first.md:3: citation of `alpha2024frist`, which is not in references.bib — did you "
        "mean `alpha2024first`? use a key from literature/references.bib, or add the paper with "
        "`mechatlas lit add`"
    ]


def test_a_missing_results_directory_means_no_results(library: Path) -> None:
    assert check_library("literature", "no/such/dir", None) == []
    assert replications_from_results("no/such/dir") == {}


def test_replications_are_derived_from_the_result_records(library: Path) -> None:
    grouped = replications_from_results("data/results")
    [replication] = grouped["alpha2024first"]
    assert (replication.claim, replication.experiment, replication.model) == (
        "alpha-claim",
        "exp",
        "organism",
    )
    assert replication.verdict is Verdict.replicated
    assert replication.evidence == Path("data/results/exp/organism/metrics.json")


def test_the_check_command_exits_non_zero_and_prints_every_problem(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(
        BETA.replace("[child-method]", "[quantum-dowsing]")
    )
    result = CliRunner().invoke(lit_app, ["check"])
    assert result.exit_code == 1
    assert "literature/papers/beta2023second.yaml:1: unknown method id `quantum-dowsing`" in result.output


def test_the_check_command_exits_zero_on_a_valid_library(library: Path) -> None:
    result = CliRunner().invoke(lit_app, ["check"])
    assert result.exit_code == 0, result.output
    assert "2 papers, 2 taxonomy nodes, 2 bib entries" in result.output


def test_load_library_refuses_a_broken_library_and_lists_the_problems(library: Path) -> None:
    (library / "papers" / "beta2023second.yaml").write_text(
        BETA.replace("[child-method]", "[quantum-dowsing]")
    )
    with pytest.raises(LiteratureError, match="unknown method id `quantum-dowsing`"):
        load_library("literature")


def test_lit_add_round_trips_a_paper_and_refuses_it_the_second_time(library: Path) -> None:
    args = ["add", "--arxiv", "2406.11717", "--title", "Refusal in Language Models Is Mediated by a Single Direction",
            "--authors", "Andy Arditi; Oscar Obeso", "--year", "2024", "--venue", "NeurIPS", "--type",
            "inproceedings", "--verified"]  # fmt: skip
    first = CliRunner().invoke(lit_app, args)
    assert first.exit_code == 0, first.output
    assert "added `arditi2024refusal`" in first.output
    assert problems_in() == []
    stub = (library / "papers" / "arditi2024refusal.yaml").read_text()
    assert "unverified: false" in stub
    assert '#     location: "Section 4.1; Figure 3"  # REQUIRED' in stub
    # The commented template, uncommented and filled in, is a claim the check accepts.
    head, template = stub.split("claims: []\n# claims:\n")
    template = "".join(line.removeprefix("# ") for line in template.splitlines(keepends=True))
    filled = head + "claims:\n" + template.replace("kebab-case-id", "x")
    (library / "papers" / "arditi2024refusal.yaml").write_text(filled)
    assert problems_in() == []
    assert load_library("literature").paper("arditi2024refusal").claims[0].location == "Section 4.1; Figure 3"
    (library / "papers" / "arditi2024refusal.yaml").write_text(stub)
    assert load_library("literature").paper("arditi2024refusal").claims == ()

    second = CliRunner().invoke(lit_app, args)
    assert second.exit_code == 1
    assert isinstance(second.exception, LiteratureError)
    assert "key `arditi2024refusal` is already there" in str(second.exception)
    assert problems_in() == []


def test_lit_add_takes_a_doi_offline_and_its_stub_asks_for_each_claims_location(library: Path) -> None:
    args = ["add", "--doi", "https://doi.org/10.1000/Gamma.2022", "--title", "Third Paper About Gamma",
            "--authors", "Gus Gamma; Dan Delta", "--year", "2022", "--venue", "Journal of Tests", "--type",
            "article"]  # fmt: skip
    result = CliRunner().invoke(lit_app, args)
    assert result.exit_code == 0, result.output
    assert "added `gamma2022third`" in result.output and "each claim needs a `location`" in result.output
    bib = (library / "references.bib").read_text()
    assert "  doi     = {10.1000/Gamma.2022},\n" in bib  # the bare DOI, not the URL it was typed as
    stub = (library / "papers" / "gamma2022third.yaml").read_text()
    assert "unverified: true" in stub and "#     location:" in stub and "REQUIRED" in stub
    assert problems_in() == []


def test_lit_add_refuses_the_same_arxiv_id_under_another_key(library: Path) -> None:
    bibtex = entry_from_metadata(
        title="A Different Title", authors=["Ann Alpha"], year=2024, arxiv="2401.00001v3"
    )
    with pytest.raises(LiteratureError) as refused:
        add_papers(bibtex, "literature")
    assert "has the same arXiv id as `alpha2024first`" in str(refused.value)
    assert not (library / "papers" / "alpha2024different.yaml").exists()


def test_lit_add_reads_bibtex_from_stdin_and_renames_a_non_house_key(library: Path) -> None:
    bibtex = (
        "@article{Zeta2021SomeKey,\n  title = {Zeta Functions of Probes},\n  author = {Zeta, Zoe},\n"
        "  journal = {Journal of Tests},\n  year = {2021},\n  doi = {https://doi.org/10.1000/ZETA.1},\n}\n"
    )
    result = CliRunner().invoke(lit_app, ["add", "-"], input=bibtex)
    assert result.exit_code == 0, result.output
    assert "added `zeta2021zeta` (renamed from `Zeta2021SomeKey`)" in result.output
    assert "doi     = {10.1000/ZETA.1}," in (library / "references.bib").read_text()
    assert problems_in() == []


def test_lit_add_refuses_malformed_bibtex_without_writing_anything(library: Path) -> None:
    before = (library / "references.bib").read_text()
    with pytest.raises(LiteratureError, match="malformed BibTeX entry `eta2020bad`"):
        add_papers("@misc{eta2020bad,\n  title = {Bad\n", "literature")
    assert (library / "references.bib").read_text() == before


def test_citations_are_formatted_as_plain_text_with_their_identifier(library: Path) -> None:
    assert format_citation("alpha2024first") == (
        "Ann Alpha. First paper about alpha. arXiv preprint, 2024. arXiv:2401.00001."
    )
    assert format_citation("beta2023second").endswith("doi:10.1000/beta.2023.")


# --- the real repository ---------------------------------------------------------------------------

NAMED_PAPERS = [
    "olah2020zoom", "elhage2022toy", "elhage2021mathematical", "olsson2022context", "nanda2023progress",
    "li2023emergent", "nanda2023emergent", "wang2023interpretability", "bricken2023towards", "cunningham2024sparse",
    "templeton2024scaling", "zou2023representation", "rimsky2024steering", "cao2024personalized",
    "li2023inference", "arditi2024refusal", "wollschlager2025geometry", "marshall2024refusal", "pan2025hidden",
    "siu2025cosmic", "zhao2025harmfulness", "alain2016understanding", "hewitt2019designing",
    "voita2020information", "burns2023discovering", "kantamneni2025sparse", "smith2025negative",
    "dunefsky2024transcoders", "paulo2025transcoders", "ameisen2025circuit", "lindsey2025biology",
    "kamath2025tracing", "pan2024latentqa", "karvonen2025activation", "lindsey2025emergent",
    "cundy2025preference", "casademunt2025steering", "nanda2025pragmatic", "sharkey2025open",
    "bereska2024mechanistic", "rai2024practical",
]  # fmt: skip

CONTRACT_NODES = [
    "difference-in-means", "directional-ablation", "activation-addition", "weight-orthogonalization",
    "linear-probing", "inlp", "leace", "causal-ablation", "activation-patching", "path-patching",
    "sparse-autoencoders", "logit-lens", "representation-engineering", "refusal-direction",
    "spectral-dimensionality", "concept-cones",
]  # fmt: skip


@pytest.fixture(scope="module")
def repository_library():  # type: ignore[no-untyped-def]
    return load_library(REPO / "literature")


def test_the_repository_literature_passes_the_check() -> None:
    problems = check_library(REPO / "literature", REPO / "data" / "results", REPO / "reports")
    assert [str(problem) for problem in problems] == []


def test_the_living_review_has_at_least_120_papers_and_65_nodes(repository_library) -> None:  # type: ignore[no-untyped-def]
    assert len(repository_library.papers) >= 120
    assert len(repository_library.taxonomy) >= 65


def test_the_papers_named_in_the_issue_are_present_and_verified(repository_library) -> None:  # type: ignore[no-untyped-def]
    for key in NAMED_PAPERS:
        assert not repository_library.paper(key).unverified, key


def test_the_node_ids_other_stages_depend_on_exist(repository_library) -> None:  # type: ignore[no-untyped-def]
    for node_id in CONTRACT_NODES:
        assert node_id in repository_library.taxonomy, node_id


def test_the_claims_other_stages_depend_on_exist(repository_library) -> None:  # type: ignore[no-untyped-def]
    expected = {
        "arditi2024refusal": {"ablation-bypasses-refusal", "addition-induces-refusal",
                              "orthogonalization-equals-ablation", "minimal-capability-cost", "single-direction"},
        "mechatlas2026refusalgeometry": {"refusal-multidimensional", "dimensionality-varies-with-depth",
                                         "domain-dependent-directions", "harmfulness-refusal-loosely-linked"},
        "zhao2025harmfulness": {"harmfulness-distinct-from-refusal"},
        "wollschlager2025geometry": {"refusal-concept-cones", "optimised-directions-fewer-side-effects"},
    }  # fmt: skip
    for key, claims in expected.items():
        assert claims <= set(repository_library.paper(key).claim_ids), key
    own = repository_library.paper("mechatlas2026refusalgeometry")
    assert own.own_work and not own.unverified
    assert repository_library.bibliography.entry("zhao2025harmfulness").arxiv_id == "2507.11878"


def test_the_refusal_geometry_cluster_links_the_single_direction_to_its_rivals(repository_library) -> None:  # type: ignore[no-untyped-def]
    clusters = {cluster.id: cluster for cluster in repository_library.clusters()}
    refusal = clusters["refusal-geometry"]
    for claim in [("arditi2024refusal", "single-direction"), ("wollschlager2025geometry", "refusal-concept-cones"),
                  ("mechatlas2026refusalgeometry", "refusal-multidimensional")]:  # fmt: skip
        assert claim in refusal.claims, claim
    relations = {(link.source[0], link.relation, link.target) for link in refusal.links}
    assert ("wollschlager2025geometry", "contradicts", ("arditi2024refusal", "single-direction")) in relations


def test_every_repository_claim_says_where_its_evidence_is(repository_library) -> None:  # type: ignore[no-untyped-def]
    missing = [
        (key, c.id) for key, p in repository_library.papers.items() for c in p.claims if not c.location
    ]
    assert missing == []
    assert repository_library.testable_claims(), "some claims are open for replication"
