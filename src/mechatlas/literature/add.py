"""Adding a paper: ``mechatlas lit add``.

A paper arrives either as BibTeX (pasted from a publisher, arXiv or Google Scholar) or, offline, as an
arXiv id or DOI with its metadata typed in. Either way the entry is rewritten in the house layout
under a house-style key, checked against the same rules as ``mechatlas lit check``, compared with the
bibliography for duplicates (same key, DOI, arXiv id or normalised title), and only then written:
the entry appended to ``references.bib`` and a stub ``papers/<key>.yaml`` for the contributor to fill
in. Both writes are atomic, so an interrupted add never leaves a half-written file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mechatlas.errors import LiteratureError
from mechatlas.io import write_text
from mechatlas.literature.bib import (
    KEY_SHAPE,
    VENUE_FIELD,
    BibEntry,
    bare_doi,
    entry_problems,
    identity,
    normalise_arxiv,
    parse_bibtex,
    read_bibliography,
    render_entry,
    suggest_key,
)
from mechatlas.literature.check import BIB_NAME, PAPERS_NAME

INPUT_NAME = "<new entry>"


@dataclass(frozen=True)
class AddedPaper:
    """A paper that was added: its key, the stub to fill in, and the key it arrived with if renamed."""

    key: str
    paper_file: Path
    renamed_from: str | None = None


def entry_from_metadata(
    *,
    title: str,
    authors: Sequence[str],
    year: int | str,
    venue: str | None = None,
    arxiv: str | None = None,
    doi: str | None = None,
    url: str | None = None,
    entry_type: str = "misc",
    key: str | None = None,
) -> str:
    """BibTeX for a paper described by hand (offline: nothing is fetched). Needs an arXiv id or a DOI.

    ``venue`` goes in the field ``entry_type`` uses for it (``howpublished`` for @misc, ``booktitle``
    for @inproceedings, ...); an arXiv preprint without one is ``howpublished = {arXiv preprint}``.
    """
    if not (arxiv or doi):
        raise LiteratureError(
            "a paper added by metadata needs --arxiv or --doi; or pass a BibTeX entry instead"
        )
    if entry_type not in VENUE_FIELD:
        raise LiteratureError(
            f"entry type {entry_type!r} is not used here; use one of {', '.join(VENUE_FIELD)}"
        )
    venue = venue or ("arXiv preprint" if arxiv else None)
    if not venue:
        raise LiteratureError(
            "--venue is required for a paper without an arXiv id (the journal or conference)"
        )
    names = [_bibtex_name(name) for name in authors if name.strip()]
    if not names:
        raise LiteratureError("--authors is required, e.g. --authors 'Andy Arditi; Oscar Obeso'")
    fields = {"title": title.strip(), VENUE_FIELD[entry_type]: venue.strip(), "year": str(year).strip()}
    if doi:
        fields["doi"] = bare_doi(doi)
    if arxiv:
        fields["eprint"] = normalise_arxiv(arxiv)
        fields["archivePrefix"] = "arXiv"
    if url:
        fields["url"] = url.strip()
    return render_entry(entry_type, key or suggest_key(names, str(year), title), fields, names)


def split_authors(text: str) -> list[str]:
    """Authors typed on the command line: separated by `;` or by BibTeX's ` and `."""
    parts = text.split(";") if ";" in text else re.split(r"\s+and\s+", text)
    return [part.strip() for part in parts if part.strip()]


def _bibtex_name(name: str) -> str:
    """`Andy Arditi` -> `Arditi, Andy`; `Last, First` and `{Group name}` are kept as written."""
    name = name.strip()
    if "," in name or name.startswith("{") or " " not in name:
        return name
    first, last = name.rsplit(" ", 1)
    return f"{last}, {first}"


def add_papers(
    bibtex: str, root: str | Path = "literature", *, key: str | None = None, verified: bool = False
) -> list[AddedPaper]:
    """Add every entry in ``bibtex`` to the library at ``root``, or none of them.

    Refuses (``LiteratureError``, listing every reason) malformed BibTeX, an entry that breaks the house
    rules, and any paper already present under the same key, DOI, arXiv id or normalised title.
    ``key`` renames a single entry; a key that does not follow the house shape is replaced by one that
    does. ``verified`` says the metadata was checked against the arXiv or DOI record.
    """
    root = Path(root)
    bib_path, papers_dir = root / BIB_NAME, root / PAPERS_NAME
    if not root.is_dir():
        raise LiteratureError(f"{root} is not a literature directory; pass --root, e.g. --root literature")
    entries, problems = parse_bibtex(bibtex, INPUT_NAME)
    if problems:
        raise LiteratureError(_listing("the BibTeX could not be read", problems))
    if not entries:
        raise LiteratureError("no BibTeX entry found in the input; it should start with `@type{key,`")
    if key is not None and len(entries) != 1:
        raise LiteratureError(
            "--key renames one entry, but the input has several; give each its key in the BibTeX"
        )

    new = [_house_entry(entry, key) for entry in entries]
    reasons = [str(p) for rendered, _ in new for p in entry_problems(rendered, INPUT_NAME)]
    if reasons:
        raise LiteratureError("the entry breaks the house rules:\n" + "\n".join(reasons))
    reasons = _duplicate_reasons([rendered for rendered, _ in new], bib_path, papers_dir)
    if reasons:
        raise LiteratureError("refusing to add a paper that is already there:\n" + "\n".join(reasons))

    existing = bib_path.read_text(encoding="utf-8") if bib_path.is_file() else ""
    blocks = [rendered.source for rendered, _ in new]
    separator = "\n\n" if existing.strip() else ""
    write_text(bib_path, existing.rstrip("\n") + separator + "\n\n".join(blocks) + "\n")
    added = []
    for rendered, original_key in new:
        paper_file = papers_dir / f"{rendered.key}.yaml"
        write_text(paper_file, paper_stub(rendered, verified=verified))
        added.append(
            AddedPaper(rendered.key, paper_file, original_key if original_key != rendered.key else None)
        )
    return added


def _house_entry(entry: BibEntry, key: str | None) -> tuple[BibEntry, str]:
    """The entry rewritten in the house layout, under ``key`` or a house-shaped key."""
    final_key = key or (
        entry.key if KEY_SHAPE.match(entry.key) else suggest_key(entry.authors, entry.year, entry.title)
    )
    fields = {name: value for name, value in entry.fields.items() if name != "author"}
    # Identifiers pasted from a browser are cleaned rather than refused: the bare form is unambiguous.
    if "doi" in fields:
        fields["doi"] = bare_doi(fields["doi"])
    if "eprint" in fields:
        fields["eprint"] = normalise_arxiv(fields["eprint"])
        fields.setdefault("archiveprefix", "arXiv")
    text = render_entry(entry.type, final_key, fields, entry.authors)
    parsed, problems = parse_bibtex(text, INPUT_NAME)
    if problems or len(parsed) != 1:
        raise LiteratureError(_listing(f"could not rewrite entry `{entry.key}`", problems))
    return parsed[0], entry.key


def _duplicate_reasons(new: list[BibEntry], bib_path: Path, papers_dir: Path) -> list[str]:
    bibliography, _ = read_bibliography(bib_path)
    reasons = []
    known = {
        (what, value): entry for entry in bibliography.entries.values() for what, value in identity(entry)
    }
    for entry in new:
        if entry.key in bibliography:
            line = bibliography.entries[entry.key].line
            reasons.append(
                f"{bib_path}:{line}: key `{entry.key}` is already there — pick another key with --key"
            )
            continue
        same = next(((what, known[(what, v)]) for what, v in identity(entry) if (what, v) in known), None)
        if same is not None:
            what, earlier = same
            reasons.append(
                f"{bib_path}:{earlier.line}: `{entry.key}` has the same {what} as `{earlier.key}` — "
                f"it is already in the library; cite `{earlier.key}`"
            )
            continue
        if (papers_dir / f"{entry.key}.yaml").exists():
            reasons.append(
                f"{papers_dir / (entry.key + '.yaml')}:1: a paper file for `{entry.key}` already exists — "
                "add its BibTeX entry by hand, or pick another key with --key"
            )
            continue
        known.update({(what, value): entry for what, value in identity(entry)})
    return reasons


def paper_stub(entry: BibEntry, *, verified: bool = False) -> str:
    """The paper file a contributor fills in; comments say what goes where."""
    title = " ".join(entry.title.split())
    unverified = "false" if verified else "true"
    return f"""\
# {title} ({entry.venue}, {entry.year})
# Fill this in, then run `mechatlas lit check` (CONTRIBUTING.md explains each field):
#   methods: taxonomy ids from literature/taxonomy.yaml that the paper introduces or uses
#   models:  the models it studies, by their usual names
#   tags:    kebab-case words for the site's index
#   claims:  one entry per claim, as in the template below; `mechatlas lit check` refuses a claim
#            without a `location`, and a statement with a number its evidence does not contain
unverified: {unverified}  # false once the entry is checked against the arXiv or DOI record
methods: []
models: []
tags: []
claims: []
# claims:
#   - id: kebab-case-id
#     statement: >-
#       The claim, in your own words.
#     evidence: >-
#       What the paper shows for it (every number of the statement must appear here too).
#     location: "Section 4.1; Figure 3"  # REQUIRED: where the evidence is, in the paper's own numbering
#     supports: []     # optional: claims of other papers it supports, as <bibkey>:<claim-id>
#     contradicts: []  # optional: claims of other papers it contradicts, as <bibkey>:<claim-id>
#     testable_by: []  # optional: taxonomy ids a result of ours could test it with
replications: []
"""


def _listing(headline: str, problems: Sequence[object]) -> str:
    return headline + (":\n" + "\n".join(str(p) for p in problems) if problems else "")
