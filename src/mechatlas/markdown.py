"""Markdown for numbers and tables: escaping, number formats, intervals, small tables.

Every text that reaches the site from a record or from contributors passes through ``md_text`` or
``md_code``, which escape what Markdown (and the HTML it may carry) would otherwise obey. The formats
give a metric with its 95% interval and n (``fmt_metric``), and ``table``/``leaf_table`` lay rows out.
Experiments' headlines and the site's pages share these, so this module sits with the contracts.

>>> md_text("<b>bold</b>")
'&#60;b&#62;bold&#60;/b&#62;'
>>> fmt_metric({"value": 0.927, "ci95": [0.857, 0.964], "n": 96, "ci_method": "wilson"})
'93% [86%, 96%] (n = 96)'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Characters that can start markup anywhere in a line: raw HTML and entities, links and images,
# attribute lists, emphasis, code spans, table cells, escapes, macros ({{ }}) and citations ([@key]).
_ALWAYS = frozenset("&<>[]()!{}*_`|\\~^=@$")


# Characters that only start a block at the beginning of a line (headings, lists, quotes, details).
_AT_START = frozenset("#+-.:?0123456789")


def _ref(char: str) -> str:
    return f"&#{ord(char)};"


def md_text(text: object) -> str:
    """``text`` as one line of Markdown that renders exactly as written, with nothing interpreted.

    >>> md_text("<script>alert(1)</script>")
    '&#60;script&#62;alert&#40;1&#41;&#60;/script&#62;'
    >>> md_text("difference-in-means, p. 3")
    'difference-in-means, p. 3'
    """
    line = " ".join(str(text).split())
    out = [_ref(char) if char in _ALWAYS else char for char in line]
    if out and line[0] in _AT_START:
        out[0] = _ref(line[0])
    return "".join(out)


def md_code(text: object) -> str:
    """``text`` as an inline code span (Markdown shows code literally; only the backtick fence needs care).

    >>> md_code("data/results/a_b.json")
    '`data/results/a_b.json`'
    >>> md_code("a ` b")
    '``a ` b``'
    """
    line = " ".join(str(text).split())
    if not line or "|" in line:  # a pipe would still split a table cell; show it as escaped text instead
        return md_text(line)
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", line)), default=0) + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{ticks}{pad}{line}{pad}{ticks}"


def md_link(text: str, target: str) -> str:
    """A Markdown link whose text is shown literally; ``target`` is a URL or a page-relative path."""
    return f"[{md_text(text)}]({target})"


def fence(code: str, language: str = "") -> str:
    """A fenced code block longer than any run of backticks inside ``code``, so it cannot be closed early."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{code.rstrip()}\n{ticks}"


MAX_DIGITS = 6  # no number on the site shows more significant digits than this
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _clean(value: float) -> float:
    """Floating-point dust (a Wilson bound of 3e-18) and negative zero are zero."""
    return 0.0 if abs(value) < 1e-12 else value


def _scientific(value: float, digits: int) -> str:
    mantissa, exponent = f"{value:.{max(digits - 1, 0)}e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def fmt_number(value: object, digits: int = 3) -> str:
    """A number for a table: integers as they are, floats to ``digits`` significant figures (at most six).

    >>> [fmt_number(x) for x in (96, 0.9270833, 7.63e-06, 1234.5, 1.0, -0.0, float("nan"), None)]
    ['96', '0.927', '7.63×10⁻⁶', '1,234', '1', '0', 'n/a', 'n/a']
    >>> fmt_number(1_708_160)
    '1.71 million'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):  # a record may put anything where a number usually is
        return md_text(value if isinstance(value, str) else json.dumps(value, default=str))
    if isinstance(value, int):
        if abs(value) >= 1_000_000:  # at most six significant digits: large counts in millions
            return f"{value / 1e6:.3g} million"
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    value = _clean(value)
    digits = min(max(digits, 1), MAX_DIGITS)
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e6:
        return _scientific(value, digits)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.{digits}g}"
    if "e" in text:
        text = f"{value:.{digits}f}"
    return _strip(text) if "." in text else text


def _strip(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def interval_decimals(low: float | int, high: float | int, *, scale: float = 1.0) -> int:
    """Decimals that show an interval's width to one significant digit, two if it starts with 1 or 2.

    This is the one rule that chooses how precisely a value with an interval is written: the interval
    says which digits mean something. ``scale`` is 100 for a percentage. The result is between 0 and 6.

    >>> interval_decimals(0.03, 0.09), interval_decimals(0.94, 1.0, scale=100.0), interval_decimals(25, 37)
    (2, 0, 0)
    """
    width = abs(high - low) * scale
    if width <= 0 or not math.isfinite(width):
        return 0 if scale != 1.0 else 2
    exponent = math.floor(math.log10(width))
    leading = int(width / 10**exponent + 1e-9)
    return min(max(-exponent + (1 if leading < 3 else 0), 0), MAX_DIGITS)


def is_rate(metric: Mapping[str, Any]) -> bool:
    """A share of cases (a refusal rate): Wilson intervals, or a record that says its unit is a rate."""
    unit = str(metric.get("unit") or metric.get("interval_unit") or "").lower()
    method = str(metric.get("ci_method") or "").lower()
    value = metric.get("value")
    in_unit = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    if not in_unit:
        return False
    if method == "wilson" or unit in ("rate", "proportion", "share", "fraction"):
        return True
    ci = metric.get("ci95")  # a cluster bootstrap of a share of prompts (refusals per framing)
    bounded = isinstance(ci, list | tuple) and all(isinstance(v, int | float) and 0 <= v <= 1 for v in ci)
    return "cluster" in method and "clusters" in metric and bounded


def rate_decimals(value: float, low: float, high: float) -> int:
    """Decimals for a rate in percent: whole percentages, one decimal when the interval is narrower than
    one point, and never a rounded 0% or 100% for a rate that is not exactly 0 or 1 (1 of 400 is 99.8%).

    >>> rate_decimals(0.99, 0.94, 1.0), rate_decimals(0.9975, 0.986, 0.9996), rate_decimals(0.0, 0.0, 0.04)
    (0, 1, 0)
    """
    decimals = 1 if abs(high - low) < 0.01 else 0
    while decimals < 2 and 0 < value < 1 and round(100 * value, decimals) in (0, 100):
        decimals += 1
    return decimals


def fmt_percent(value: float | None, decimals: int = 0) -> str:
    """A rate in [0, 1] as a percentage: ``0.59375`` -> ``59%``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{_fixed(100 * value, decimals)}%"


def fmt_estimate(
    value: object, ci: Sequence[Any] | None = None, *, rate: bool = False, percent_sign: bool = True
) -> str:
    """A value with its 95% interval, its digits chosen by the interval's width.

    Rates are percentages. Without an interval a float gets three significant figures.

    >>> fmt_estimate(0.0599, [0.0316, 0.0947])
    '0.06 [0.03, 0.09]'
    >>> fmt_estimate(0.434, [0.354, 0.529])
    '0.43 [0.35, 0.53]'
    >>> fmt_estimate(0.9896, [0.9433, 0.9982], rate=True)
    '99% [94%, 100%]'
    >>> fmt_estimate(29.0, [27.0, 29.0])
    '29 [27, 29]'
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return fmt_number(value)
    numbers = [v for v in (ci or ()) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != 2:
        return fmt_percent(value, 0) if rate else fmt_number(value)
    low, high = float(numbers[0]), float(numbers[1])
    if rate:
        decimals = rate_decimals(float(value), low, high)
        shown = [fmt_percent(v, decimals) for v in (value, low, high)]
        if not percent_sign:
            shown = [s.rstrip("%") for s in shown]
        return f"{shown[0]} [{shown[1]}, {shown[2]}]"
    if all(float(v).is_integer() for v in (value, low, high)) and abs(value) < 1e6:
        return f"{int(value)} [{int(low)}, {int(high)}]"
    big = max(abs(float(value)), abs(low), abs(high))
    if big >= 1e6 or (0 < big < 1e-3):
        return f"{fmt_number(value)} [{fmt_number(low)}, {fmt_number(high)}]"
    decimals = interval_decimals(low, high)
    if big >= 1:  # never more than six significant digits in all
        decimals = min(decimals, max(MAX_DIGITS - 1 - math.floor(math.log10(big)), 0))
    return "{} [{}, {}]".format(*(_fixed(float(v), decimals) for v in (value, low, high)))


def _fixed(value: float, decimals: int) -> str:
    """``value`` to ``decimals`` places, never ``-0.00``."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


LIST_PREVIEW = 12  # values of a number list shown inline


def is_metric(value: object) -> bool:
    """A leaf with a value and its uncertainty: ``{"value", "ci95", "n", ...}``."""
    return isinstance(value, Mapping) and "value" in value and ("ci95" in value or "n" in value)


def is_leaf(value: object) -> bool:
    """A value shown in one table cell: a metric, a scalar, text, or a list of those."""
    if is_metric(value) or value is None or isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(not isinstance(v, Mapping | list) for v in value)


def fmt_ci(metric: Mapping[str, Any]) -> str:
    """A metric's 95% interval alone, written by the same rule as ``fmt_metric``."""
    ci = metric.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        text = fmt_estimate(metric.get("value"), ci, rate=is_rate(metric))
        return text[text.index("[") :] if "[" in text else "—"
    return "—"


def fmt_value(metric: Mapping[str, Any]) -> str:
    """A metric's value alone, with the digits its interval allows."""
    text = fmt_estimate(metric.get("value"), metric.get("ci95"), rate=is_rate(metric))
    return text.split(" [")[0]


def fmt_metric(metric: Mapping[str, Any], *, with_n: bool = True) -> str:
    """``93% [86%, 96%] (n = 96)``: a value with its 95% CI (rates as percentages).

    >>> fmt_metric({"value": 0.4338, "ci95": [0.3541, 0.529], "n": 96, "ci_method": "bootstrap"})
    '0.43 [0.35, 0.53] (n = 96)'
    """
    value = metric.get("value")
    ci = metric.get("ci95")
    text = fmt_estimate(value, ci if isinstance(ci, list | tuple) else None, rate=is_rate(metric))
    if with_n and metric.get("n") is not None:
        n = metric["n"]
        text += f" (n = {fmt_number(n) if not isinstance(n, list) else ', '.join(map(fmt_number, n))})"
    return text


def fmt_leaf(value: object, *, with_n: bool = True) -> str:
    """Any leaf as one table cell (contributed text escaped)."""
    if is_metric(value):
        return fmt_metric(value, with_n=with_n)  # type: ignore[arg-type]
    if value is None:
        return "—"
    if isinstance(value, bool | int | float):
        return fmt_number(value)
    if isinstance(value, list):
        shown = ", ".join(_list_item(v) for v in value[:LIST_PREVIEW])
        more = f", … ({len(value)} values)" if len(value) > LIST_PREVIEW else ""
        return f"[{shown}{more}]" if value else "[]"
    if isinstance(value, Mapping):
        return md_text(_compact(value))
    return md_text(value)


def _list_item(value: object) -> str:
    if value is None or isinstance(value, bool | int | float):
        return fmt_number(value)
    if isinstance(value, list) and all(v is None or isinstance(v, int | float) for v in value):
        return "[" + ", ".join(fmt_number(v) for v in value) + "]"
    return md_text(value if isinstance(value, str) else _compact(value))


def _compact(value: object, limit: int = 200) -> str:
    """Nested data as short JSON, for the rare cell that holds a whole structure."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table; cells must already be escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def leaf_table(items: list[tuple[str, Any]]) -> list[str]:
    """Named leaves as a table: value, CI, n and CI method when all are metrics, else name and value."""
    if all(is_metric(v) for _, v in items):
        return table(
            ["", "value", "95% CI", "n", "CI method"],
            (
                [
                    md_text(key),
                    fmt_value(v),
                    fmt_ci(v),
                    fmt_number(v.get("n")),
                    md_text(v.get("ci_method", "—")),
                ]
                for key, v in items
            ),
        )
    return table(["", "value"], ([md_text(key), fmt_leaf(v)] for key, v in items))


def _cell_number(x: object) -> float | None:
    """A matrix cell's number: the number itself, or a metric's value."""
    if is_metric(x):
        x = x.get("value")  # type: ignore[attr-defined]
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


def is_matrix(value: object) -> bool:
    """A rectangular list of lists of numbers or metrics, at least 2 × 2 (a cosine or transfer matrix)."""
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(row, list) for row in value):
        return False
    width = len(value[0])
    return width >= 2 and all(
        len(row) == width
        and all(
            x is None or is_metric(x) or (isinstance(x, int | float) and not isinstance(x, bool)) for x in row
        )
        for row in value
    )


def heatmap(
    matrix: Sequence[Sequence[Any]],
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> list[str]:
    """A matrix as an HTML table shaded by value (darker is larger), three significant figures a cell.

    Labels are escaped; the shading is a number between 0 and 1, so nothing contributed reaches the style.
    """
    numbers = [n for row in matrix for x in row if (n := _cell_number(x)) is not None]
    low, high = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
    span = (high - low) or 1.0
    rows = (
        list(rows) if rows is not None and len(rows) == len(matrix) else [str(i) for i in range(len(matrix))]
    )
    width = len(matrix[0]) if matrix else 0
    columns = (
        list(columns) if columns is not None and len(columns) == width else [str(j) for j in range(width)]
    )
    head = "".join(f"<th>{md_text(c)}</th>" for c in columns)
    body = []
    for name, row in zip(rows, matrix, strict=True):
        cells = []
        for x in row:
            number = _cell_number(x)
            if number is None:
                cells.append("<td>—</td>")
                continue
            shade = (number - low) / span
            dark = " heat-dark" if shade > 0.6 else ""
            shown = fmt_metric(x, with_n=False) if is_metric(x) else fmt_number(x)  # type: ignore[arg-type]
            cells.append(f'<td class="heat{dark}" style="--heat: {shade:.2f}">{shown}</td>')
        body.append(f"<tr><th>{md_text(name)}</th>{''.join(cells)}</tr>")
    note = f"shading from {fmt_number(low)} (light) to {fmt_number(high)} (dark)"
    return [
        '<div class="table-scroll" markdown="0"><table class="heatmap">',
        f"<caption>{note}</caption>",
        f"<thead><tr><th></th>{head}</tr></thead>",
        "<tbody>" + "".join(body) + "</tbody>",
        "</table></div>",
        "",
    ]


_TOKEN_MARKS = {"Ċ": "↵", "Ġ": "␣", "ĉ": "⇥"}  # byte-level BPE's stand-ins for newline, space and tab


def readable_token(token: object) -> str:
    """A tokenizer's token as a reader can read it: ``Ċ`` (byte-level BPE's newline) becomes ``↵ (newline)``.

    >>> readable_token("Ċ"), readable_token("Ġthe")
    ('↵ (newline)', '␣the')
    """
    text = str(token)
    if text == "Ċ":
        return "↵ (newline)"
    return "".join(_TOKEN_MARKS.get(char, char) for char in text)


def readable_hook(hook: object) -> str:
    """A TransformerLens hook name in words: ``blocks.3.hook_resid_pre`` -> ``residual stream before block 3``."""
    match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|mid|post)", str(hook))
    if match is None:
        return str(hook)
    where = {"pre": "before", "mid": "in the middle of", "post": "after"}[match.group(2)]
    return f"residual stream {where} block {match.group(1)}"


def figure_html(number: int, target: str, title: str, look: str = "") -> str:
    """A numbered figure that opens full size on click: the image and link in Markdown (so each builder
    rewrites the path for the page's address) inside a ``<figure markdown="span">`` (``md_in_html``)."""
    caption = f"<strong>Figure {number}.</strong> {md_text(title)}." + (f" {md_text(look)}" if look else "")
    return "\n".join(
        [
            f'<figure class="mechatlas-figure" id="figure-{number}" markdown="span">',
            f'[![Figure {number}: {md_text(title)}]({target})]({target} "Open the full-size figure")',
            f"<figcaption>{caption}</figcaption>",
            "</figure>",
        ]
    )


_MATH = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\w$])")


def math_html(latex: str) -> str:
    """LaTeX as MathML, rendered when the pages are generated: browsers show MathML natively, so the site
    needs no JavaScript and nothing from the network for math."""
    from latex2mathml.converter import convert

    return convert(latex)


def render_math(text: str) -> str:
    """Replace ``$...$`` in a line of hand-written Markdown by MathML (``\\$`` stays a dollar sign).

    >>> render_math("cost $x^2$ and \\$5").startswith("cost <math")
    True
    """
    return _MATH.sub(lambda m: math_html(m.group(1)), text)


def md_text_with_math(text: str) -> str:
    """``md_text`` for contributed text, except ``$...$``, which becomes MathML (the glossary's formulas).

    >>> md_text_with_math("a unit direction $r$, then <b>").startswith("a unit direction <math")
    True
    """

    def escaped(part: str) -> str:  # md_text trims; keep the spaces around a formula
        if not part.strip():
            return " " if part else ""
        lead = " " if part[0].isspace() else ""
        trail = " " if part[-1].isspace() else ""
        return lead + md_text(part) + trail

    out, last = [], 0
    for match in _MATH.finditer(text):
        out += [escaped(text[last : match.start()]), math_html(match.group(1))]
        last = match.end()
    out.append(escaped(text[last:]))
    return "".join(out)
