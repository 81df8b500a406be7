"""Citations and result macros in hand-written pages: ``[@bibkey]`` and ``{{ metric(...) }}``.

The site's MkDocs hook (``mechatlas.site.hooks``) runs ``render_page`` on every hand-written page and
blog post before Markdown sees it:

- ``[@arditi2024refusal]``, ``[@a; @b]`` and ``[see @key, p. 3]`` (pandoc's syntax) become an inline
  author–year citation linking to the paper's page, and the page gets a reference list, formatted by
  pybtex's ``plain`` style from ``literature/references.bib``;
- ``{{ metric("<experiment>", "<model>", "<dotted.path>") }}`` (the experiment's folder name, the
  model's name, a path into the record's ``metrics``) becomes the number as the result record holds it, with its 95% CI and n, so a post cannot drift from the
  results; ``organism(path)``, ``verdict(...)`` and ``reason(...)`` do the same for the organism's
  behaviour record and for a result's verdict on a paper claim.

An unknown key, a missing record or a missing metric is a ``SiteError`` naming the file and line; the hook
turns it into a failed build. Code (fenced blocks and inline code spans) is left alone.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybtex.database import Person
from pybtex.database.input.bibtex import Parser
from pybtex.plugin import find_plugin
from pybtex.richtext import Text

from mechatlas.errors import MechatlasError
from mechatlas.experiments import registry
from mechatlas.literature.bib import BibEntry, Bibliography
from mechatlas.markdown import (
    figure_html,
    fmt_estimate,
    fmt_number,
    fmt_percent,
    is_metric,
    is_rate,
    md_text,
    render_math,
)
from mechatlas.records import Verdict
from mechatlas.site.records import METRICS_NAME, ORGANISM_RECORD
from mechatlas.site.text import latex_text, plain, safe_url


class SiteError(MechatlasError):
    """A page that cannot be built as written: an unknown citation key, a missing metric."""


# A pandoc-style citation group: [@key], [@a; @b], [see @key, p. 3]. A key may not follow a word
# character (so e-mail addresses are not citations); the same rule as `mechatlas lit check`.
CITATION_GROUP = re.compile(r"\[([^\[\]\n]*@[^\[\]\n]*)\](?!\()")
CITED_KEY = re.compile(r"(?<![\w.@])-?@([A-Za-z][\w:-]*)")
MACRO = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\((.*?)\)\s*\}\}")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)(?<!`)\1(?!`)")


# --- Formatting references with pybtex ------------------------------------------------------------


def _last_names(author: str) -> str:
    person = Person(author)
    names = person.rich_last_names or person.rich_first_names
    return latex_text(plain(Text(*names))) if names else latex_text(author)


def author_year(entry: BibEntry) -> str:
    """``Arditi et al., 2024``; two authors are named, a group author is named whole."""
    surnames = [_last_names(author) for author in entry.authors] or ["Anonymous"]
    if len(surnames) == 1:
        who = surnames[0]
    elif len(surnames) == 2:
        who = f"{surnames[0]} and {surnames[1]}"
    else:
        who = f"{surnames[0]} et al."
    return f"{who}, {entry.year.strip()}"


def citation_labels(bibliography: Bibliography) -> dict[str, str]:
    """Author–year labels for every key, with a, b, ... where two papers would share one."""
    plain = {key: author_year(entry) for key, entry in bibliography.entries.items()}
    groups: dict[str, list[str]] = {}
    for key, label in plain.items():
        groups.setdefault(label, []).append(key)
    labels = {}
    for label, keys in groups.items():
        if len(keys) == 1:
            labels[keys[0]] = label
            continue
        for index, key in enumerate(
            sorted(keys, key=lambda k: latex_text(bibliography.entry(k).title).lower())
        ):
            labels[key] = f"{label}{chr(ord('a') + index)}"
    return labels


_STYLE = find_plugin("pybtex.style.formatting", "plain")()
_MARKDOWN = find_plugin("pybtex.backends", "markdown")()


def reference_markdown(entry: BibEntry) -> str:
    """The entry in pybtex's ``plain`` style as one line of Markdown, its text escaped by pybtex.

    Only http(s) URLs survive: a ``url = {javascript:...}`` field is dropped before formatting.
    """
    data = Parser().parse_string(entry.source)
    parsed = next(iter(data.entries.values()))
    if "url" in parsed.fields and safe_url(str(parsed.fields["url"])) is None:
        del parsed.fields["url"]
    formatted = next(iter(_STYLE.format_bibliography(data)))
    text = str(formatted.text.render(_MARKDOWN))
    # pybtex writes link targets raw; re-encode them so none can carry markup or a non-http scheme.
    text = re.sub(r"\]\(([^)\s]*)\)", lambda m: f"]({safe_url(m.group(1)) or '#'})", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class CitationStyle:
    """What a page needs to cite: labels and formatted references by key, and where paper pages live."""

    bibliography: Bibliography
    labels: Mapping[str, str]

    @classmethod
    def from_bibliography(cls, bibliography: Bibliography) -> CitationStyle:
        return cls(bibliography, citation_labels(bibliography))

    def unknown(self, key: str, file: str, line: int) -> SiteError:
        close = difflib.get_close_matches(key, list(self.bibliography.entries), n=1, cutoff=0.75)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return SiteError(
            f"{file}:{line}: citation of `{key}`, which is not in {self.bibliography.path.name} — "
            f"{hint}use a key from {self.bibliography.path}, or add the paper with `mechatlas lit add`"
        )


# --- Walking the prose of a page ------------------------------------------------------------------


def _prose(markdown: str, first_line: int = 1) -> Iterator[tuple[int, str, bool]]:
    """Each line with its number and whether it is prose (outside fenced code)."""
    fence: str | None = None
    for number, line in enumerate(markdown.split("\n"), start=first_line):
        match = _FENCE.match(line)
        if match and (fence is None or (match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence))):
            fence = match.group(1) if fence is None else None
            yield number, line, False
            continue
        yield number, line, fence is None


def _outside_code(line: str, replace: Callable[[str], str]) -> str:
    """Apply ``replace`` to the parts of ``line`` outside inline code spans."""
    out, last = [], 0
    for span in _CODE_SPAN.finditer(line):
        out += [replace(line[last : span.start()]), span.group(0)]
        last = span.end()
    return "".join([*out, replace(line[last:])])


def render_page(
    markdown: str,
    *,
    file: str,
    style: CitationStyle,
    paper_link: Callable[[str], str],
    macros: MacroContext,
    first_line: int = 1,
) -> str:
    """Expand macros and citations in one page; append its reference list if it cites anything.

    ``paper_link(key)`` gives the page-relative link to the paper's page; ``file`` names the page in errors,
    and ``first_line`` is the file line ``markdown`` starts at (after any front matter).
    """
    cited: list[str] = []
    lines = []
    for number, line, prose in _prose(markdown, first_line):
        if prose:
            line = _outside_code(line, render_math)
            line = _outside_code(line, lambda part, n=number: macros.expand(part, file, n))  # type: ignore[misc]
            line = _outside_code(line, lambda part, n=number: _cite(part, file, n, style, paper_link, cited))  # type: ignore[misc]
        lines.append(line)
    text = "\n".join(lines)
    if cited:
        text = text.rstrip("\n") + "\n\n" + reference_list(cited, style, paper_link)
    return text


def _cite(
    part: str, file: str, line: int, style: CitationStyle, paper_link: Callable[[str], str], cited: list[str]
) -> str:
    def one_group(group: re.Match[str]) -> str:
        items = []
        for piece in group.group(1).split(";"):
            match = CITED_KEY.search(piece)
            if match is None:
                items.append(md_text(piece.strip()))
                continue
            key = match.group(1)
            if key not in style.bibliography:
                raise style.unknown(key, file, line)
            if key not in cited:
                cited.append(key)
            before, after = piece[: match.start()].strip(), piece[match.end() :].strip()
            suppress_author = match.group(0).startswith("-")
            label = style.labels[key]
            if suppress_author:
                label = style.bibliography.entry(key).year.strip()
            link = f"[{md_text(label)}]({paper_link(key)})"
            text = f"{md_text(before)} {link}" if before else link
            if after:
                text += ("" if after[0] in ",;:." else " ") + md_text(after)
            items.append(text)
        return '<span class="citation">(' + "; ".join(items) + ")</span>"

    return CITATION_GROUP.sub(lambda m: one_group(m) if CITED_KEY.search(m.group(1)) else m.group(0), part)


def reference_list(keys: list[str], style: CitationStyle, paper_link: Callable[[str], str]) -> str:
    """The page's references, sorted by label, each linking to the paper's page on the site."""
    ordered = sorted(keys, key=lambda k: style.labels[k].lower())
    items = [
        f"- {reference_markdown(style.bibliography.entry(key))} "
        f"[Paper page: {md_text(style.labels[key])}]({paper_link(key)})"
        for key in ordered
    ]
    return "\n".join(["## References", "", *items, ""])


# --- Result macros --------------------------------------------------------------------------------

FORMATS = ("auto", "value", "ci", "n", "pct", "pct_ci")


@dataclass
class MacroContext:
    """Reads result records for ``{{ ... }}`` macros, each file once per build."""

    results_root: Path
    root: Path | None = None  # paths in messages are shown relative to it (the project root)
    repo_url: str | None = None  # mkdocs.yml's extra.mechatlas.repo_url, for {{ repo_url() }}
    docs_dir: Path | None = None  # where the figures are (docs_dir/figures), for {{ figure(...) }}
    page: str = ""  # the docs-relative page being rendered, for relative links; set per page
    figures_shown: int = 0  # figures numbered so far on this page
    _cache: dict[Path, Any] | None = None

    def record(self, path: Path, file: str, line: int) -> Mapping[str, Any]:
        if self._cache is None:
            self._cache = {}
        if path not in self._cache:
            if not path.is_file():
                shown = os.path.relpath(path, self.root) if self.root is not None else path
                raise SiteError(
                    f"{file}:{line}: the result record {shown} does not exist — run the study (`make run`), "
                    "or fix the experiment and model names"
                )
            self._cache[path] = json.loads(path.read_text(encoding="utf-8"))
        return self._cache[path]  # type: ignore[no-any-return]

    def expand(self, part: str, file: str, line: int) -> str:
        return MACRO.sub(lambda m: self._call(m.group(1), m.group(2), file, line), part)

    def _call(self, name: str, arguments: str, file: str, line: int) -> str:
        args, kwargs = _literal_arguments(name, arguments, file, line)
        handlers = {
            "metric": self.metric,
            "organism": self.organism,
            "verdict": self.verdict,
            "reason": self.reason,
            "findings": self.findings,
            "repo_url": self.repository,
            "figure": self.figure,
        }
        if name not in handlers:
            raise SiteError(
                f"{file}:{line}: unknown macro `{name}` — use one of {', '.join(handlers)} "
                "(e.g. " + example_macro() + ")"
            )
        try:
            return handlers[name](*args, file=file, line=line, **kwargs)  # type: ignore[operator]
        except TypeError as error:
            raise SiteError(f"{file}:{line}: `{name}(...)` has the wrong arguments ({error})") from None

    def metric(
        self,
        experiment: str,
        model: str,
        path: str,
        *,
        file: str,
        line: int,
        fmt: str = "auto",
        digits: int | None = None,
    ) -> str:
        record = self.record(self.results_root / experiment / model / METRICS_NAME, file, line)
        return _format(_lookup(record, path, f"{experiment}/{model}", file, line), fmt, digits, file, line)

    def organism(
        self, path: str, *, file: str, line: int, fmt: str = "auto", digits: int | None = None
    ) -> str:
        record = self.record(self.results_root / ORGANISM_RECORD, file, line)
        return _format(_lookup(record, path, "organism", file, line), fmt, digits, file, line)

    def figure(self, experiment: str, model: str, name: str, *, file: str, line: int) -> str:
        """A pipeline figure as a numbered figure with the registry's caption (the SVG if it was drawn as
        one, else the PNG), linked to its full size."""
        from mechatlas.site.records import FIGURE_SUFFIXES
        from mechatlas.site.text import relative

        folder = (self.docs_dir or Path("reports")) / "figures" / experiment / model
        found = next(
            (folder / f"{name}{s}" for s in FIGURE_SUFFIXES if (folder / f"{name}{s}").is_file()), None
        )
        # FIGURE_SUFFIXES lists SVG first: a vector figure wins over a PNG left from an older run
        if found is None:
            raise SiteError(
                f"{file}:{line}: no figure `{name}` in {folder} — run the study (`make run`), or use one of the "
                f"experiment's figures ({', '.join(registry.get(experiment).figures) if registry.find(experiment) else 'none'})"
            )
        entry = registry.find(experiment)
        title, look = (entry.captions.get(name) if entry else None) or (
            name.replace("_", " ").capitalize(),
            "",
        )
        self.figures_shown += 1
        number = self.figures_shown
        target = relative(self.page, f"figures/{experiment}/{model}/{found.name}")
        return figure_html(number, target, title, look)

    def repository(self, *, file: str, line: int) -> str:
        """The repository's URL (``repo_url`` in mkdocs.yml), for links to it from hand-written pages."""
        if not self.repo_url:
            raise SiteError(f"{file}:{line}: `repo_url()` needs `extra.mechatlas.repo_url` set in mkdocs.yml")
        return self.repo_url

    def findings(
        self, experiment: str, model: str = "organism", *, file: str, line: int, sentences: int | None = None
    ) -> str:
        """What an experiment found, in the sentences its result page opens with (escaped)."""
        from mechatlas.site.tables import findings  # the site's tables import this module

        if experiment == "organism":
            record = self.record(self.results_root / ORGANISM_RECORD, file, line)
        else:
            record = self.record(self.results_root / experiment / model / METRICS_NAME, file, line)
        found = findings(experiment, record.get("metrics", {}))
        if not found:
            raise SiteError(
                f"{file}:{line}: no findings for `{experiment}` on `{model}` — the experiment has no findings "
                "maker in mechatlas.experiments.registry, or its record lacks the numbers it needs"
            )
        return " ".join(md_text(s) for s in found[:sentences])

    def _claim(
        self, experiment: str, model: str, paper: str, claim: str, file: str, line: int
    ) -> Mapping[str, Any]:
        record = self.record(self.results_root / experiment / model / METRICS_NAME, file, line)
        for item in record.get("replicates", []):
            if item.get("paper") == paper and item.get("claim") == claim:
                return item  # type: ignore[no-any-return]
        raise SiteError(
            f"{file}:{line}: {experiment}/{model} has no verdict on `{paper}`/`{claim}` — "
            "check the paper key and claim id against the record's `replicates`"
        )

    def verdict(self, experiment: str, model: str, paper: str, claim: str, *, file: str, line: int) -> str:
        verdict = Verdict.parse(self._claim(experiment, model, paper, claim, file, line).get("verdict"))
        if verdict is None:
            raise SiteError(f"{file}:{line}: the verdict on `{paper}`/`{claim}` is not a known verdict")
        return verdict_badge(verdict)

    def reason(self, experiment: str, model: str, paper: str, claim: str, *, file: str, line: int) -> str:
        reason = self._claim(experiment, model, paper, claim, file, line).get("reason")
        if not reason:
            raise SiteError(f"{file}:{line}: the verdict on `{paper}`/`{claim}` gives no reason")
        return md_text(reason)


def example_macro() -> str:
    """A ``{{ metric(...) }}`` call for help texts, on the registry's example experiment and metric."""
    entry = registry.example()
    experiment, path = (entry.name, entry.example_metric) if entry else ("<experiment>", "<dotted.path>")
    return f'{{{{ metric("{experiment}", "organism", "{path}") }}}}'


def verdict_badge(verdict: Verdict) -> str:
    """A coloured label; the verdict is one of a fixed set, so it is safe in a class name."""
    return f'<span class="verdict verdict-{verdict.slug}">{verdict.value}</span>'


def _literal_arguments(name: str, arguments: str, file: str, line: int) -> tuple[list[Any], dict[str, Any]]:
    """Parse ``"a", "b", fmt="pct"`` as literals only: a macro reads data, it never runs code."""
    try:
        call = ast.parse(f"f({arguments})", mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg is not None}
    except (SyntaxError, ValueError):
        raise SiteError(
            f"{file}:{line}: cannot read the arguments of `{name}(...)` — write them as quoted strings, "
            "e.g. " + example_macro()
        ) from None
    return args, kwargs


def _lookup(record: Mapping[str, Any], path: str, which: str, file: str, line: int) -> Any:
    """Follow a dotted path into a record's ``metrics`` (list items by index)."""
    node: Any = record.get("metrics", {})
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            options = sorted(map(str, node)) if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, options, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`? " if close else ""
            where = ".".join(walked) or "metrics"
            keys = f"; {where} has: {', '.join(options[:12])}" if options else ""
            raise SiteError(
                f"{file}:{line}: {which} has no metric `{path}` (no `{part}` under `{where}`) — "
                f"{hint}copy the dotted path from the result page{keys}"
            )
        walked.append(part)
    return node


def _format(value: Any, fmt: str, digits: int | None, file: str, line: int) -> str:
    if fmt not in FORMATS:
        raise SiteError(f"{file}:{line}: unknown format {fmt!r} — use one of {', '.join(FORMATS)}")
    metric = is_metric(value)
    if fmt != "auto" and fmt != "value" and not metric:
        raise SiteError(
            f"{file}:{line}: format {fmt!r} needs a metric with a CI, and this value is {value!r}"
        )
    number = value.get("value") if metric else value
    if isinstance(number, Mapping | list):
        raise SiteError(
            f"{file}:{line}: this path leads to a table, not a value — extend the path to one number"
        )
    if fmt in ("pct", "pct_ci"):
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise SiteError(f"{file}:{line}: format {fmt!r} needs a number, and this value is {number!r}")
        ci = value.get("ci95")
        if digits is None:  # the site's one rule: the interval picks the digits (mechatlas.markdown)
            text = fmt_estimate(number, ci, rate=True) if ci else fmt_percent(number, 0)
            shown, _, interval = text.partition(" [")
            if fmt == "pct" or not ci:
                return shown
            low, high = interval.rstrip("]").split(", ")
            return f"{shown} (95% CI {low}–{high}, n = {value.get('n')})"
        text = fmt_percent(number, digits)
        if fmt == "pct_ci" and ci:
            low, high = ci
            text += f" (95% CI {fmt_percent(low, digits)}–{fmt_percent(high, digits)}, n = {value.get('n')})"
        return text
    shown = md_text(number) if isinstance(number, str) else fmt_number(number, digits or 3)
    if fmt == "value" or not metric:
        return shown
    if fmt == "n":
        return fmt_number(value.get("n"))
    ci = value.get("ci95")
    ci_text = f"{fmt_number(ci[0], digits or 3)}–{fmt_number(ci[1], digits or 3)}" if ci else "n/a"
    if digits is None and ci and not isinstance(number, str):  # the one rule: the interval picks the digits
        estimate = fmt_estimate(number, ci, rate=is_rate(value))
        shown, _, interval = estimate.partition(" [")
        ci_text = interval.rstrip("]").replace(", ", "–")
    if fmt == "ci":
        return f"[{ci_text}]"
    return f"{shown} (95% CI {ci_text}, n = {fmt_number(value.get('n'))})"
