"""The bibliography: ``literature/references.bib``, read entry by entry with pybtex.

Why entry by entry: pybtex stops at the first syntax error, which would hide every problem after it.
Splitting the file at each line that opens an entry (``@type{key,``) and parsing each piece on its own
lets the referee report every malformed entry at its line and still read all the good ones.

This module also holds the house rules for an entry (key shape, required fields, an identifier), the
normalised identifiers that reveal the same paper under two keys, the canonical way an entry is
written out (``render_entry``), and plain-text citations for the site (``format_citation``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pybtex.database import BibliographyDataError
from pybtex.database.input.bibtex import Parser
from pybtex.exceptions import PybtexError
from pybtex.plugin import find_plugin
from pybtex.scanner import PrematureEOF, PybtexSyntaxError

from mechatlas.literature.problems import Problem

# A line that opens an entry: `@inproceedings{arditi2024refusal,` (BibTeX also allows `(` for `{`).
_ENTRY_START = re.compile(r"^[ \t]*@[ \t]*([A-Za-z]+)[ \t]*[{(][ \t]*([^,\s{}()]*)", re.MULTILINE)
# firstauthor + year + first word of the title, all lowercase: arditi2024refusal.
KEY_SHAPE = re.compile(r"^[a-z]+[0-9]{4}[a-z][a-z0-9]*$")
# The entry types we use, each with the field that names its venue.
VENUE_FIELD = {
    "article": "journal",
    "inproceedings": "booktitle",
    "misc": "howpublished",
    "techreport": "institution",
}
# New-style (2406.11717) and old-style (hep-th/9901001) arXiv identifiers, without a version.
_ARXIV_ID = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[a-z]{2})?/\d{7})$")
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
_ARXIV_IN_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/([^\s?#]+?)(?:v\d+)?(?:\.pdf)?$", re.IGNORECASE)
_DOI_IN_URL = re.compile(r"doi\.org/(10\.\S+)$", re.IGNORECASE)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$")
# Field order in the canonical rendering; the names keep BibTeX's usual capitalisation.
_FIELD_ORDER = (
    "title",
    "author",
    "editor",
    "journal",
    "booktitle",
    "howpublished",
    "institution",
    "publisher",
    "volume",
    "number",
    "pages",
    "year",
    "month",
    "doi",
    "eprint",
    "archivePrefix",
    "primaryClass",
    "url",
    "note",
)
_CANONICAL_NAME = {name.lower(): name for name in _FIELD_ORDER}


@dataclass(frozen=True)
class BibEntry:
    """One BibTeX entry as written in the file. ``fields`` has lower-case names; ``line`` is where it opens."""

    key: str
    type: str
    fields: dict[str, str]
    authors: tuple[str, ...]
    line: int
    source: str

    @property
    def title(self) -> str:
        return self.fields.get("title", "")

    @property
    def year(self) -> str:
        return self.fields.get("year", "")

    @property
    def venue(self) -> str:
        return self.fields.get(VENUE_FIELD.get(self.type, "howpublished"), "")

    @property
    def url(self) -> str | None:
        return self.fields.get("url")

    @property
    def doi(self) -> str | None:
        """The normalised DOI, from the ``doi`` field or a doi.org URL."""
        if "doi" in self.fields:
            return normalise_doi(self.fields["doi"])
        match = _DOI_IN_URL.search(self.fields.get("url", ""))
        return normalise_doi(match.group(1)) if match else None

    @property
    def arxiv_id(self) -> str | None:
        """The normalised arXiv id, from ``eprint``, an arxiv.org URL or an arXiv DOI."""
        if "eprint" in self.fields and self.fields.get("archiveprefix", "arxiv").lower() == "arxiv":
            return normalise_arxiv(self.fields["eprint"])
        match = _ARXIV_IN_URL.search(self.fields.get("url", ""))
        if match:
            return normalise_arxiv(match.group(1))
        doi_match = _ARXIV_DOI.match(self.doi or "")
        return normalise_arxiv(doi_match.group(1)) if doi_match else None

    def field_line(self, name: str) -> int:
        """The line of field ``name`` in the file, or the entry's first line if it is absent."""
        pattern = re.compile(rf"^\s*{re.escape(name)}\s*=", re.IGNORECASE)
        for offset, text in enumerate(self.source.splitlines()):
            if pattern.match(text):
                return self.line + offset
        return self.line


@dataclass(frozen=True)
class Bibliography:
    """All entries of one ``.bib`` file, in file order; ``unreadable`` holds keys of malformed entries."""

    path: Path
    entries: dict[str, BibEntry]
    unreadable: frozenset[str] = frozenset()

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, key: str) -> BibEntry:
        """The entry for ``key``; a ``KeyError`` names the file to add it to."""
        if key not in self.entries:
            raise KeyError(f"no BibTeX entry `{key}` in {self.path}")
        return self.entries[key]

    def format_citation(self, key: str) -> str:
        """A plain-text reference for ``key`` in pybtex's ``plain`` style, with its DOI or arXiv id."""
        return format_citation(self.entry(key))

    def bibtex_source(self, key: str) -> str:
        """The entry for ``key`` exactly as written in references.bib (for a "cite this" box)."""
        return self.entry(key).source


def read_bibliography(
    path: Path, display: str | None = None, own_work: frozenset[str] = frozenset()
) -> tuple[Bibliography, list[Problem]]:
    """Read ``path`` entry by entry; return the good entries and every problem found (file order).

    ``display`` is how the file is named in problems (defaults to ``str(path)``). Keys in ``own_work``
    (the team's own blog series) need no DOI, arXiv id or URL: the source is this repository.
    A missing file is one problem, not an exception: the referee lists it with the others.
    """
    file = display or str(path)
    if not path.is_file():
        return Bibliography(path, {}), [
            Problem(file, 1, "the bibliography file is missing", "create it; every paper needs an entry here")
        ]
    text = path.read_text(encoding="utf-8")
    entries, problems = parse_bibtex(text, file)
    # Keys of entries pybtex could not read: already reported, so other checks must not call them missing.
    unreadable = frozenset(match.group(2) for match in _ENTRY_START.finditer(text)) - {e.key for e in entries}
    by_key: dict[str, BibEntry] = {}
    for entry in entries:
        if entry.key in by_key:
            first = by_key[entry.key]
            problems.append(
                Problem(
                    file,
                    entry.line,
                    f"key `{entry.key}` is used twice (first at line {first.line})",
                    "merge the two entries, or give this one its own key",
                )
            )
            continue
        by_key[entry.key] = entry
        problems.extend(entry_problems(entry, file, needs_identifier=entry.key not in own_work))
    problems.extend(duplicate_problems(by_key.values(), file))
    return Bibliography(path, by_key, unreadable), problems


def parse_bibtex(text: str, file: str, first_line: int = 1) -> tuple[list[BibEntry], list[Problem]]:
    """Parse BibTeX ``text`` one entry at a time; a malformed entry becomes a problem at its line."""
    entries: list[BibEntry] = []
    problems: list[Problem] = []
    starts = list(_ENTRY_START.finditer(text))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        chunk = text[match.start() : end]
        line = first_line + text.count("\n", 0, match.start())
        entry_type, key = match.group(1).lower(), match.group(2)
        if entry_type == "comment":
            continue
        if entry_type in ("string", "preamble"):
            problems.append(
                Problem(
                    file,
                    line,
                    f"@{entry_type} is not used in this bibliography",
                    "write values out in full in each entry, so every entry stands on its own",
                )
            )
            continue
        entry, problem = _parse_entry(chunk, file, line, key)
        if problem is not None:
            problems.append(problem)
        if entry is not None:
            entries.append(entry)
    return entries, problems


def _parse_entry(chunk: str, file: str, line: int, key: str) -> tuple[BibEntry | None, Problem | None]:
    """Parse one entry's text; a pybtex error becomes a problem pointing at the offending line."""
    name = f"`{key}`" if key else "(no key)"
    syntax_fix = "write it as `@type{key,` then one `field = {value},` per line, and close it with `}`"
    try:
        data = Parser().parse_string(chunk)
    except PrematureEOF:
        # pybtex only notices at the end of the text, so point at the entry that never closed.
        return None, Problem(
            file,
            line,
            f"malformed BibTeX entry {name}: it never closes (unbalanced braces or quotes)",
            'close every `{` and `"`, and end the entry with `}`',
        )
    except PybtexSyntaxError as error:
        reason = re.sub(r"^.*? in line \d+: ", "", str(error))
        error_line = line + (error.lineno or 1) - 1
        return None, Problem(file, error_line, f"malformed BibTeX entry {name}: {reason}", syntax_fix)
    except BibliographyDataError as error:
        field = re.search(r"duplicate (\S+) field", str(error))
        error_line = _second_field_line(chunk, field.group(1), line) if field else line
        return None, Problem(
            file, error_line, f"malformed BibTeX entry {name}: {error}", "keep one copy of the field"
        )
    except PybtexError as error:
        return None, Problem(file, line, f"malformed BibTeX entry {name}: {error}", syntax_fix)
    if len(data.entries) != 1:
        return None, Problem(file, line, f"could not read a BibTeX entry {name} here", syntax_fix)
    parsed_key, parsed = next(iter(data.entries.items()))
    fields = {field_name.lower(): str(value) for field_name, value in parsed.fields.items()}
    persons = parsed.persons.get("author", [])
    return (
        BibEntry(
            key=parsed_key,
            type=parsed.type.lower(),
            fields=fields,
            authors=tuple(str(person) for person in persons),
            line=line,
            source=_entry_text(chunk),
        ),
        None,
    )


def _entry_text(chunk: str) -> str:
    """The entry alone, up to its closing delimiter, without comments that follow it in the file."""
    opener = re.search(r"[{(]", chunk)
    if opener is None:
        return chunk.strip()
    closer = "}" if opener.group() == "{" else ")"
    depth = 0
    for position in range(opener.end(), len(chunk)):
        char = chunk[position]
        if char == "{":
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
        elif char == closer and depth == 0:
            return chunk[: position + 1].strip()
    return chunk.strip()


def _second_field_line(chunk: str, field: str, line: int) -> int:
    pattern = re.compile(rf"^\s*{re.escape(field)}\s*=", re.IGNORECASE)
    hits = [offset for offset, text in enumerate(chunk.splitlines()) if pattern.match(text)]
    return line + hits[1] if len(hits) > 1 else line


def entry_problems(entry: BibEntry, file: str, *, needs_identifier: bool = True) -> list[Problem]:
    """The house rules for one entry: key shape, type, title, authors, year, venue and an identifier."""
    problems: list[Problem] = []
    where = entry.line
    if not KEY_SHAPE.match(entry.key):
        problems.append(
            Problem(
                file,
                where,
                f"key `{entry.key}` does not follow the house shape",
                "use the first author's surname, the year and the first title word, "
                f"in lowercase, e.g. `{suggest_key(entry.authors, entry.year, entry.title)}`",
            )
        )
    if entry.type not in VENUE_FIELD:
        allowed = ", ".join(f"@{name}" for name in VENUE_FIELD)
        problems.append(
            Problem(file, where, f"`{entry.key}` is a @{entry.type} entry", f"use one of {allowed}")
        )
    if not entry.title.strip():
        problems.append(Problem(file, where, f"`{entry.key}` has no title", "add `title = {...},`"))
    if not entry.authors:
        problems.append(
            Problem(
                file,
                where,
                f"`{entry.key}` has no authors",
                "add `author = {Last, First and Last, First},` (a group: `{{Group name}}`)",
            )
        )
    if not re.fullmatch(r"\d{4}", entry.year.strip()):
        problems.append(
            Problem(
                file,
                entry.field_line("year"),
                f"`{entry.key}` has year {entry.year.strip()!r}"
                if entry.year
                else f"`{entry.key}` has no year",
                "write the four-digit year of the version cited: `year = {2024},`",
            )
        )
    venue_field = VENUE_FIELD.get(entry.type)
    if venue_field and not entry.fields.get(venue_field, "").strip():
        problems.append(
            Problem(
                file,
                where,
                f"@{entry.type} `{entry.key}` has no venue",
                f"add `{venue_field} = {{...}},` (for a preprint: @misc with `howpublished = {{arXiv preprint}}`)",
            )
        )
    problems.extend(_identifier_problems(entry, file, needs_identifier))
    return problems


def _identifier_problems(entry: BibEntry, file: str, needs_identifier: bool) -> list[Problem]:
    problems: list[Problem] = []
    fields = entry.fields
    if needs_identifier and not ({"doi", "eprint", "url"} & fields.keys()):
        problems.append(
            Problem(
                file,
                entry.line,
                f"`{entry.key}` has no DOI, arXiv id or URL",
                "add `doi = {10...},` or `eprint = {2406.11717},` with `archivePrefix = {arXiv},`; "
                "use `url` alone only for work published only on the web",
            )
        )
    if "eprint" in fields:
        if fields.get("archiveprefix", "").lower() != "arxiv":
            problems.append(
                Problem(
                    file,
                    entry.field_line("eprint"),
                    f"`{entry.key}` has an eprint without `archivePrefix = {{arXiv}}`",
                    "add `archivePrefix = {arXiv},` next to the eprint",
                )
            )
        elif not _ARXIV_ID.match(fields["eprint"].strip()):
            problems.append(
                Problem(
                    file,
                    entry.field_line("eprint"),
                    f"`{entry.key}` has eprint {fields['eprint']!r}, which is not a bare arXiv id",
                    "write the id alone, without version or prefix: `eprint = {2406.11717},`",
                )
            )
    if "doi" in fields and not _DOI.match(fields["doi"].strip()):
        problems.append(
            Problem(
                file,
                entry.field_line("doi"),
                f"`{entry.key}` has doi {fields['doi']!r}, which is not a bare DOI",
                "write the DOI alone, without https://doi.org/: `doi = {10.18653/v1/D19-1275},`",
            )
        )
    return problems


def duplicate_problems(entries: Iterable[BibEntry], file: str) -> list[Problem]:
    """Flag an entry that repeats an earlier one's DOI, arXiv id or normalised title under a new key."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], BibEntry] = {}
    for entry in entries:
        for what, value in identity(entry):
            earlier = seen.get((what, value))
            if earlier is not None and earlier.key != entry.key:
                problems.append(
                    Problem(
                        file,
                        entry.line,
                        f"`{entry.key}` is the same paper as `{earlier.key}` (line {earlier.line}): same {what}",
                        f"remove `{entry.key}` and cite `{earlier.key}` instead",
                    )
                )
                break
            seen.setdefault((what, value), entry)
    return problems


def identity(entry: BibEntry) -> list[tuple[str, str]]:
    """What makes two entries the same paper: the DOI, the arXiv id and the normalised title."""
    found: list[tuple[str, str]] = []
    if entry.doi:
        found.append(("DOI", entry.doi))
    if entry.arxiv_id:
        found.append(("arXiv id", entry.arxiv_id))
    title = normalise_title(entry.title)
    if title:
        found.append(("title", title))
    return found


def bare_doi(doi: str) -> str:
    """The DOI without a resolver prefix (`https://doi.org/`, `doi:`), case kept as written."""
    return re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", "", doi.strip(), flags=re.IGNORECASE)


def normalise_doi(doi: str) -> str:
    """DOIs are case-insensitive; drop resolver prefixes so `https://doi.org/10.1/X` equals `10.1/x`."""
    return bare_doi(doi).lower()


def normalise_arxiv(arxiv_id: str) -> str:
    """`arXiv:2406.11717v3` and `2406.11717` name the same paper."""
    arxiv_id = re.sub(r"^arxiv:", "", arxiv_id.strip(), flags=re.IGNORECASE)
    return re.sub(r"v\d+$", "", arxiv_id).lower()


def normalise_title(title: str) -> str:
    """A title reduced to lowercase ASCII words, so that case, braces, accents and punctuation do not count."""
    text = re.sub(r"\\[A-Za-z]+\s*|\\.", "", title)  # LaTeX commands and accents: \"{a} -> {a}
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


_STOPWORDS = frozenset(
    ["a", "an", "the", "on", "of", "in", "for", "to", "and", "is", "are", "with", "via", "do", "does"]
)


def suggest_key(authors: Iterable[str], year: str, title: str) -> str:
    """The house key for a paper: first author's surname + year + first significant title word."""
    first = next(iter(authors), "anon")
    surname = first.split(",")[0] if "," in first else (first.split() or ["anon"])[-1]
    words = [w for w in normalise_title(title).split() if w not in _STOPWORDS] or ["paper"]
    surname_ascii = normalise_title(surname).replace(" ", "") or "anon"
    return f"{surname_ascii}{year.strip()}{words[0]}"


def render_entry(entry_type: str, key: str, fields: dict[str, str], authors: Iterable[str]) -> str:
    """Write an entry in the house layout: aligned `=`, known fields first in a fixed order."""
    values: dict[str, str] = {}
    author_list = list(authors)
    if author_list:
        values["author"] = " and ".join(author_list)
    for name, value in fields.items():
        if name.lower() != "author":
            values[_CANONICAL_NAME.get(name.lower(), name)] = value
    order = {name: i for i, name in enumerate(_FIELD_ORDER)}
    names = sorted(values, key=lambda n: (order.get(n, len(order)), n))
    width = max((len(n) for n in names), default=0)
    lines = [f"@{entry_type}{{{key},"]
    lines += [f"  {name.ljust(width)} = {{{values[name]}}}," for name in names]
    lines.append("}")
    return "\n".join(lines)


def format_citation(entry: BibEntry) -> str:
    """A plain-text reference in pybtex's ``plain`` style, ending with the DOI or arXiv id if it lacks one."""
    style = find_plugin("pybtex.style.formatting", "plain")()
    data = Parser().parse_string(entry.source)
    formatted = next(iter(style.format_bibliography(data)))
    text: str = formatted.text.render_as("text")
    if entry.doi and entry.doi not in text.lower():
        text += f" doi:{entry.doi}."
    elif not entry.doi and entry.arxiv_id and entry.arxiv_id not in text.lower():
        text += f" arXiv:{entry.arxiv_id}."
    return text
