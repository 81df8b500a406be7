"""The referee: ``mechatlas lit check``. Every key, every id and every link must resolve.

It reads the three literature sources (``references.bib``, ``taxonomy.yaml``, ``papers/*.yaml``),
the result records under ``data/results/`` and the citations in the site's Markdown, and reports
every problem, not just the first, as ``file:line: what is wrong — how to fix it``:

- each file on its own: BibTeX syntax and house rules, YAML syntax and schema, tree shape;
- bibliography and papers: every bib entry has a paper file and every paper file has an entry;
  no paper appears twice (same DOI, arXiv id or normalised title under two keys);
- taxonomy: every reference is a bib key, no orphan nodes, no cycles;
- papers: every claim says where in the paper its evidence is, and every number of its statement is in
  its evidence; every ``supports``/``contradicts`` link names a claim of another paper that exists,
  and every ``testable_by`` id is a taxonomy node;
- papers and results: every method is a taxonomy id, every ``replicates`` link names a real paper and
  one of its claims with a valid verdict; hand-recorded replications agree with the result record;
- clusters (``clusters.yaml``, optional): each named cluster's seed is a linked claim, one name a cluster;
- posts: every ``[@key]`` citation is a bib key.

``load_library`` is the strict reader for code (the site): it raises ``LiteratureError`` listing all
problems, so whatever it returns is consistent.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from mechatlas.errors import LiteratureError
from mechatlas.literature.bib import Bibliography, read_bibliography
from mechatlas.literature.clusters import cluster_problems, read_cluster_names
from mechatlas.literature.library import Library
from mechatlas.literature.located import LocatedDict, line_at
from mechatlas.literature.papers import CLAIM_REF, PaperFile, read_papers
from mechatlas.literature.problems import Problem, sort_problems
from mechatlas.literature.results import METRICS_NAME, ResultRecord, read_results
from mechatlas.literature.taxonomy import read_taxonomy

BIB_NAME = "references.bib"
TAXONOMY_NAME = "taxonomy.yaml"
PAPERS_NAME = "papers"
CLUSTERS_NAME = "clusters.yaml"


def check_library(
    root: str | Path = "literature",
    results_root: str | Path | None = "data/results",
    posts_root: str | Path | None = "reports",
) -> list[Problem]:
    """Every problem in the literature and its links, sorted by file and line; empty means it passes.

    ``results_root`` or ``posts_root`` set to None skips those links; a directory that does not exist
    counts as empty (no results yet, no posts yet).
    """
    return inspect_library(root, results_root, posts_root)[1]


def load_library(root: str | Path = "literature") -> Library:
    """Read the literature for code to use; raises ``LiteratureError`` listing every problem if any.

    Results and posts are not read here: the library is the same with or without pulled results.
    """
    library, problems = inspect_library(root, results_root=None, posts_root=None)
    if problems:
        listing = "\n".join(str(problem) for problem in problems)
        raise LiteratureError(
            f"the literature in {root} has {len(problems)} problem(s); "
            f"run `mechatlas lit check` after fixing them:\n{listing}"
        )
    return library


def inspect_library(
    root: str | Path = "literature",
    results_root: str | Path | None = "data/results",
    posts_root: str | Path | None = "reports",
) -> tuple[Library, list[Problem]]:
    """Read everything that can be read, and every problem found; the library holds only valid records."""
    root = Path(root)
    bib_file = str(root / BIB_NAME)
    taxonomy_file = str(root / TAXONOMY_NAME)

    paper_files, problems = read_papers(root / PAPERS_NAME, str(root / PAPERS_NAME))
    # Read from the raw file, so that an invalid own-work paper file does not also flag its bib entry.
    own_work = frozenset(key for key, pf in paper_files.items() if pf.raw.get("own_work") is True)
    bibliography, bib_problems = read_bibliography(root / BIB_NAME, bib_file, own_work)
    taxonomy, raw_nodes, taxonomy_problems = read_taxonomy(root / TAXONOMY_NAME, taxonomy_file)
    problems += bib_problems + taxonomy_problems
    # A taxonomy that does not parse knows no ids: checking method ids against it would bury its one
    # syntax error under a problem for every paper, so those checks wait until it parses.
    unparsed = any(problem.message.startswith("YAML syntax error") for problem in taxonomy_problems)
    node_ids: set[str] | None = None if unparsed else set(raw_nodes)

    problems += _taxonomy_reference_problems(raw_nodes, bibliography, taxonomy_file)
    problems += _paper_problems(paper_files, bibliography, node_ids, bib_file, taxonomy_file)
    problems += _unused_entry_problems(bibliography, paper_files, root / PAPERS_NAME, bib_file)

    if results_root is not None:
        records, result_problems = read_results(Path(results_root), str(results_root))
        problems += result_problems
        problems += _result_link_problems(records, bibliography, paper_files, node_ids, taxonomy_file)
        problems += _hand_replication_problems(paper_files, records, Path(results_root))
    if posts_root is not None:
        problems += _post_citation_problems(Path(posts_root), bibliography)

    papers = {key: paper_files[key].paper for key in bibliography.entries if key in paper_files}
    valid = {key: paper for key, paper in papers.items() if paper is not None}
    clusters_file = str(root / CLUSTERS_NAME)
    names, raw_names, name_problems = read_cluster_names(root / CLUSTERS_NAME, clusters_file)
    problems += name_problems + cluster_problems(names, raw_names, valid, clusters_file)
    library = Library(
        root=root, bibliography=bibliography, taxonomy=taxonomy, papers=valid, cluster_names=names
    )
    return library, sort_problems(problems)


def _is_missing(key: str, bibliography: Bibliography) -> bool:
    """A key absent from the bibliography; one in a malformed entry is reported there, not again here."""
    return key not in bibliography and key not in bibliography.unreadable


def _taxonomy_reference_problems(
    raw_nodes: dict[str, LocatedDict], bibliography: Bibliography, file: str
) -> list[Problem]:
    problems = []
    for node_id, raw in raw_nodes.items():
        references = raw.get("references")
        if not isinstance(references, list):
            continue
        for index, key in enumerate(references):
            if isinstance(key, str) and _is_missing(key, bibliography):
                problems.append(
                    Problem(
                        file,
                        line_at(raw, ("references", index)),
                        f"node `{node_id}` cites `{key}`, which is not in {bibliography.path.name}",
                        _key_fix(key, bibliography),
                    )
                )
    return problems


def _paper_problems(
    paper_files: dict[str, PaperFile],
    bibliography: Bibliography,
    node_ids: set[str] | None,
    bib_file: str,
    taxonomy_file: str,
) -> list[Problem]:
    problems = []
    for key, paper_file in paper_files.items():
        if _is_missing(key, bibliography):
            problems.append(
                Problem(
                    paper_file.file,
                    1,
                    f"this paper file is for `{key}`, which is not in {bibliography.path.name}",
                    f"add its entry to {bib_file} (`mechatlas lit add`), or rename the file to its bib key",
                )
            )
        methods = paper_file.raw.get("methods")
        if not isinstance(methods, list):
            continue
        for index, method in enumerate(methods):
            if isinstance(method, str) and node_ids is not None and method not in node_ids:
                problems.append(
                    Problem(
                        paper_file.file,
                        line_at(paper_file.raw, ("methods", index)),
                        f"unknown method id `{method}`",
                        _id_fix(method, node_ids, taxonomy_file),
                    )
                )
        problems += _claim_link_problems(paper_file, paper_files, node_ids, taxonomy_file)
    return problems


def _claim_link_problems(
    paper_file: PaperFile, paper_files: dict[str, PaperFile], node_ids: set[str] | None, taxonomy_file: str
) -> list[Problem]:
    """``supports``/``contradicts`` must name an existing claim of another paper; ``testable_by``, a node."""
    paper = paper_file.paper
    if paper is None:
        return []
    problems = []
    for index, claim in enumerate(paper.claims):
        for field in ("supports", "contradicts"):
            for ref_index, ref in enumerate(getattr(claim, field)):
                match = CLAIM_REF.match(ref)
                if match is None or match.group(1) == paper.key:
                    continue  # reported by the paper file's own checks
                key, claim_id = match.groups()
                line = line_at(paper_file.raw, ("claims", index, field, ref_index))
                target = paper_files.get(key)
                if target is None:
                    close = difflib.get_close_matches(key, list(paper_files), n=1, cutoff=0.75)
                    hint = f"did you mean `{close[0]}`? " if close else ""
                    problems.append(
                        Problem(
                            paper_file.file,
                            line,
                            f"claim `{claim.id}` {field} `{ref}`, but there is no paper `{key}`",
                            f"{hint}use the bib key of a paper in literature/papers/",
                        )
                    )
                elif target.paper is not None and target.paper.claim(claim_id) is None:
                    known = ", ".join(target.paper.claim_ids) or "(none yet)"
                    problems.append(
                        Problem(
                            paper_file.file,
                            line,
                            f"claim `{claim.id}` {field} `{ref}`, but `{key}` has no claim `{claim_id}`",
                            f"use one of its claims ({known}), or add the claim to {target.file}",
                        )
                    )
        for method_index, method in enumerate(claim.testable_by):
            if node_ids is not None and method not in node_ids:
                problems.append(
                    Problem(
                        paper_file.file,
                        line_at(paper_file.raw, ("claims", index, "testable_by", method_index)),
                        f"claim `{claim.id}` is testable by `{method}`, which is not a taxonomy id",
                        _id_fix(method, node_ids, taxonomy_file),
                    )
                )
    return problems


def _unused_entry_problems(
    bibliography: Bibliography, paper_files: dict[str, PaperFile], papers_dir: Path, bib_file: str
) -> list[Problem]:
    """One paper file per bib entry: an entry without one is unused (and has no page on the site)."""
    return [
        Problem(
            bib_file,
            entry.line,
            f"`{key}` has no paper file",
            f"create {papers_dir / (key + '.yaml')} (`mechatlas lit add` writes a stub), or remove the entry",
        )
        for key, entry in bibliography.entries.items()
        if key not in paper_files
    ]


def _result_link_problems(
    records: list[ResultRecord],
    bibliography: Bibliography,
    paper_files: dict[str, PaperFile],
    node_ids: set[str] | None,
    taxonomy_file: str,
) -> list[Problem]:
    problems = []
    for record in records:
        for index, link in enumerate(record.replicates):
            paper_file = paper_files.get(link.paper)
            if _is_missing(link.paper, bibliography) and paper_file is None:
                problems.append(
                    Problem(
                        record.file,
                        link.line,
                        f"`replicates.{index}.paper` names `{link.paper}`, which is not a paper in the literature",
                        _key_fix(link.paper, bibliography),
                    )
                )
                continue
            if paper_file is None or paper_file.paper is None:
                continue  # reported against the bib entry or the paper file already
            if paper_file.paper.claim(link.claim) is None:
                known = ", ".join(paper_file.paper.claim_ids) or "(none yet)"
                problems.append(
                    Problem(
                        record.file,
                        link.line,
                        f"`replicates.{index}.claim` is `{link.claim}`, which `{link.paper}` does not have",
                        f"use one of its claims ({known}), or add the claim to {paper_file.file}",
                    )
                )
        for method, line in record.methods:
            if node_ids is not None and method not in node_ids:
                problems.append(
                    Problem(
                        record.file,
                        line,
                        f"unknown method id `{method}`",
                        _id_fix(method, node_ids, taxonomy_file),
                    )
                )
    return problems


def _hand_replication_problems(
    paper_files: dict[str, PaperFile], records: list[ResultRecord], results_root: Path
) -> list[Problem]:
    """A replication written in a paper file must agree with the result record, when that is present.

    Results are DVC-tracked and may not be pulled, so a record is only required when its experiment
    folder exists; then the model's record must exist and list the same claim with the same verdict.
    """
    by_run = {(record.experiment, record.model): record for record in records}
    problems = []
    for key, paper_file in paper_files.items():
        if paper_file.paper is None:
            continue
        for index, replication in enumerate(paper_file.paper.replications):
            if paper_file.paper.claim(replication.claim) is None:
                continue  # already reported: the paper has no such claim
            line = line_at(paper_file.raw, ("replications", index))
            record = by_run.get((replication.experiment, replication.model))
            if record is None:
                if (results_root / replication.experiment).is_dir():
                    target = results_root / replication.experiment / replication.model / METRICS_NAME
                    problems.append(
                        Problem(
                            paper_file.file,
                            line,
                            f"replication points at {target}, which does not exist",
                            "fix `experiment`/`model`, or run the experiment (`make run`)",
                        )
                    )
                continue
            verdicts = {
                link.verdict
                for link in record.replicates
                if (link.paper, link.claim) == (key, replication.claim)
            }
            if not verdicts:
                problems.append(
                    Problem(
                        paper_file.file,
                        line,
                        f"{record.file} does not list `{key}`/`{replication.claim}` in `replicates`",
                        "record the claim in the experiment's result (its `replicates`), or remove this entry",
                    )
                )
            elif replication.verdict not in verdicts:
                found = ", ".join(sorted(v.value for v in verdicts))
                problems.append(
                    Problem(
                        paper_file.file,
                        line_at(paper_file.raw, ("replications", index, "verdict")),
                        f"verdict `{replication.verdict.value}` disagrees with {record.file} ({found})",
                        "make the two agree; the result record is the source of truth",
                    )
                )
    return problems


# A pandoc-style citation group: [@key], [@a; @b], [see @key, p. 3]. The key may not follow a word
# character, so e-mail addresses inside brackets are not citations.
_CITATION_GROUP = re.compile(r"\[[^\[\]\n]*@[^\[\]\n]*\]")
_CITED_KEY = re.compile(r"(?<![\w.@])-?@([A-Za-z][\w:-]*)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _post_citation_problems(posts_root: Path, bibliography: Bibliography) -> list[Problem]:
    """Citations in hand-written Markdown (blog posts, pages) must name bib keys."""
    if not posts_root.is_dir():
        return []
    problems = []
    for path in sorted(posts_root.rglob("*.md")):
        if "generated" in path.relative_to(posts_root).parts:
            continue  # written by the site generator from the bibliography itself
        for line_number, line in _prose_lines(path.read_text(encoding="utf-8")):
            for group in _CITATION_GROUP.findall(line):
                for key in _CITED_KEY.findall(group):
                    if _is_missing(key, bibliography):
                        problems.append(
                            Problem(
                                str(path),
                                line_number,
                                f"citation of `{key}`, which is not in {bibliography.path.name}",
                                _key_fix(key, bibliography),
                            )
                        )
    return problems


def _prose_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines outside fenced code blocks, with inline code removed (code is not citing anything)."""
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, _INLINE_CODE.sub("", line)


def _key_fix(key: str, bibliography: Bibliography) -> str:
    close = difflib.get_close_matches(key, list(bibliography.entries), n=1, cutoff=0.75)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"{hint}use a key from {bibliography.path}, or add the paper with `mechatlas lit add`"


def _id_fix(node_id: str, known: Iterable[str], taxonomy_file: str) -> str:
    close = difflib.get_close_matches(node_id, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"{hint}use a node id from {taxonomy_file}, or add the node there"
