"""Paper files: ``literature/papers/<bibkey>.yaml``, one per paper in the bibliography.

A paper file records what we take from a paper: the taxonomy methods it uses or introduces, the
models it studies, tags, and its claims, each with an ``id`` that results point at, a ``statement``
in our own words, the ``evidence`` the paper gives and its ``location`` in the paper (section, figure,
table). A claim may name claims of other papers that it ``supports`` or ``contradicts``
(``<bibkey>:<claim-id>``) and the taxonomy methods a result of ours could test it with
(``testable_by``). ``replications`` may list results recorded by
hand (``experiment``, ``model``, ``claim``, ``verdict``); results made by the pipeline name the claims
they address in their own ``metrics.json`` and are joined in by ``results.replications_from_results``.

The team's own hypotheses are a paper too (``own_work: true``), with the blog series as the source.
``unverified: true`` marks an entry whose bibliographic facts no one has checked against the public
record yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mechatlas.literature.located import LocatedDict, line_at
from mechatlas.literature.problems import Problem
from mechatlas.literature.schema import read_yaml_file, validation_problems
from mechatlas.records import Verdict

CLAIM_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CLAIM_REF = re.compile(r"^([a-z][a-z0-9]*):([a-z0-9]+(?:-[a-z0-9]+)*)$")
# A number as written in prose: digits with decimal points or thousands commas ("0.8", "1,000",
# "72" in "72B"). Digits glued to a word on their left ("GPT-2", "L2", "Llama3") are part of a name.
NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)\d+(?:[.,]\d+)*")
LOCATION_EXAMPLE = '`location: "Section 4.1; Figure 3"`'


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Claim(_Record):
    """A claim a paper makes, which a result can replicate."""

    id: str = Field(description="Kebab-case id, unique within the paper; results cite it.")
    statement: str = Field(description="The claim, in our own words.")
    evidence: str = Field(description="What the paper offers as evidence; every number of the statement.")
    # Optional for the model so that a missing location is reported with its own wording and fix
    # (``_content_problems``); the referee requires it on every claim.
    location: str | None = Field(
        None, description="Where the evidence is in the paper: 'Section 4.1; Figure 3' (required)."
    )
    supports: tuple[str, ...] = Field((), description="Claims of other papers this one supports.")
    contradicts: tuple[str, ...] = Field((), description="Claims of other papers this one contradicts.")
    testable_by: tuple[str, ...] = Field(
        (), description="Taxonomy method ids with which a result of ours could test the claim."
    )


class Replication(_Record):
    """A result recorded by hand against one of the paper's claims."""

    claim: str = Field(description="Id of the claim, in this paper.")
    experiment: str = Field(description="Experiment name, as in data/results/<experiment>/.")
    model: str = Field(description="Model name, as in data/results/<experiment>/<model>/.")
    verdict: Verdict = Field(description="replicated, partially, not replicated or pending.")
    note: str | None = Field(None, description="Anything a reader needs to weigh the verdict.")


class Paper(_Record):
    """Everything we record about one paper; ``key`` is its bib key and file name."""

    key: str = Field(description="The bib key; taken from the file name, not written in the file.")
    own_work: bool = Field(False, description="True for the team's own hypotheses (the blog series).")
    unverified: bool = Field(
        False, description="True until the bib entry is checked against the public record."
    )
    summary: str | None = Field(None, description="Optional one-paragraph summary in our own words.")
    methods: tuple[str, ...] = Field(description="Taxonomy ids the paper introduces or uses.")
    models: tuple[str, ...] = Field(description="Models the paper studies, by their usual names.")
    tags: tuple[str, ...] = Field(description="Free kebab-case tags for the site's index.")
    claims: tuple[Claim, ...] = Field(description="The paper's claims that results can address.")
    replications: tuple[Replication, ...] = Field(description="Results recorded by hand; may be empty.")

    def claim(self, claim_id: str) -> Claim | None:
        return next((claim for claim in self.claims if claim.id == claim_id), None)

    @property
    def claim_ids(self) -> tuple[str, ...]:
        return tuple(claim.id for claim in self.claims)


@dataclass(frozen=True)
class PaperFile:
    """A paper as read from its file: the validated paper (None if invalid) and the raw, line-aware data."""

    key: str
    file: str
    paper: Paper | None
    raw: LocatedDict


def read_papers(directory: Path, display: str | None = None) -> tuple[dict[str, PaperFile], list[Problem]]:
    """Read every ``*.yaml`` in ``directory``; return them by key (file stem) with every problem found."""
    shown = display or str(directory)
    if not directory.is_dir():
        return {}, [Problem(shown, 1, "the papers directory is missing", "create it with one YAML per paper")]
    papers: dict[str, PaperFile] = {}
    problems: list[Problem] = []
    for path in sorted(directory.iterdir()):
        file = f"{shown}/{path.name}"
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix != ".yaml":
            problems.append(
                Problem(
                    file,
                    1,
                    "not a paper file",
                    f"name paper files <bibkey>.yaml (rename to {path.stem}.yaml)",
                )
            )
            continue
        paper_file, paper_problems = read_paper(path, file)
        problems.extend(paper_problems)
        papers[paper_file.key] = paper_file
    return papers, problems


def read_paper(path: Path, file: str | None = None) -> tuple[PaperFile, list[Problem]]:
    """Validate one paper file: its fields, its claim ids, and that replications name its own claims."""
    file = file or str(path)
    key = path.stem
    data, problems = read_yaml_file(path, file)
    # An unreadable file still counts as present, so its bib entry is not also reported as unused.
    if data is None and problems:
        return PaperFile(key, file, None, LocatedDict()), problems
    if not isinstance(data, LocatedDict):
        problem = Problem(file, line_at(data), "a paper file must be a mapping", _STUB_HINT)
        return PaperFile(key, file, None, LocatedDict()), [*problems, problem]
    if "key" in data:
        problems.append(
            Problem(
                file,
                line_at(data, ("key",)),
                "`key` is not written in a paper file",
                "remove it; the file name is the key",
            )
        )
    try:
        paper = Paper.model_validate({**{k: v for k, v in data.items() if k != "key"}, "key": key})
    except ValidationError as error:
        problems.extend(validation_problems(error, data, Paper, file))
        return PaperFile(key, file, None, data), problems
    problems.extend(_content_problems(paper, data, file))
    return PaperFile(key, file, paper, data), problems


def numbers_in(text: str) -> list[str]:
    """The numbers written in ``text``, in order, each once (see ``NUMBER``)."""
    return list(dict.fromkeys(NUMBER.findall(text)))


def missing_numbers(statement: str, evidence: str) -> list[str]:
    """Numbers of ``statement`` that ``evidence`` does not contain as a number, verbatim."""
    found = set(numbers_in(evidence))
    return [number for number in numbers_in(statement) if number not in found]


_STUB_HINT = "start from the stub that `mechatlas lit add` writes (see CONTRIBUTING.md)"


def _content_problems(paper: Paper, raw: LocatedDict, file: str) -> list[Problem]:
    """Checks pydantic's types cannot express: id shapes, unique claims, replications of real claims."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, claim in enumerate(paper.claims):
        line = line_at(raw, ("claims", index, "id"))
        if not CLAIM_ID.match(claim.id):
            problems.append(
                Problem(
                    file,
                    line,
                    f"claim id {claim.id!r} is not kebab-case",
                    "use lowercase words joined by hyphens, e.g. `ablation-bypasses-refusal`",
                )
            )
        if claim.id in seen:
            problems.append(
                Problem(
                    file,
                    line,
                    f"claim id `{claim.id}` is used twice (first at line {seen[claim.id]})",
                    "give each claim its own id",
                )
            )
        seen.setdefault(claim.id, line)
        for field in ("statement", "evidence"):
            if not getattr(claim, field).strip():
                problems.append(
                    Problem(
                        file,
                        line_at(raw, ("claims", index, field)),
                        f"claim `{claim.id}` has an empty {field}",
                        f"write the {field} in your own words",
                    )
                )
        if claim.location is None or not claim.location.strip():
            problems.append(
                Problem(
                    file,
                    line_at(raw, ("claims", index, "location" if claim.location is not None else "id")),
                    f"claim `{claim.id}` does not say where in the paper its evidence is",
                    f"add {LOCATION_EXAMPLE} under it: the paper's own section, figure or table numbers",
                )
            )
        missing = missing_numbers(claim.statement, claim.evidence)
        if missing:
            listed = ", ".join(f"`{number}`" for number in missing)
            problems.append(
                Problem(
                    file,
                    line_at(raw, ("claims", index, "statement")),
                    f"claim `{claim.id}`: the statement says {listed}, which its evidence does not",
                    "write in the evidence where the paper gives that number, or take it out of the statement",
                )
            )
        for field in ("supports", "contradicts"):
            for ref_index, ref in enumerate(getattr(claim, field)):
                match = CLAIM_REF.match(ref)
                if match is None:
                    problems.append(
                        Problem(
                            file,
                            line_at(raw, ("claims", index, field, ref_index)),
                            f"`{field}` entry {ref!r} of claim `{claim.id}` is not `<bibkey>:<claim-id>`",
                            "write the other paper's bib key and its claim id, e.g. "
                            "`arditi2024refusal:single-direction`",
                        )
                    )
                elif match.group(1) == paper.key:
                    problems.append(
                        Problem(
                            file,
                            line_at(raw, ("claims", index, field, ref_index)),
                            f"claim `{claim.id}` {field} `{ref}`, a claim of the same paper",
                            f"`{field}` links claims of different papers; remove it",
                        )
                    )
    for index, tag in enumerate(paper.tags):
        if not CLAIM_ID.match(tag):
            problems.append(
                Problem(
                    file,
                    line_at(raw, ("tags", index)),
                    f"tag {tag!r} is not kebab-case",
                    "use lowercase words joined by hyphens, e.g. `refusal`",
                )
            )
    for index, replication in enumerate(paper.replications):
        if replication.claim not in seen:
            problems.append(
                Problem(
                    file,
                    line_at(raw, ("replications", index, "claim")),
                    f"replication names claim `{replication.claim}`, which this paper does not have",
                    f"use one of: {', '.join(seen) or '(no claims yet: add one under `claims`)'}",
                )
            )
    return problems
