"""Markdown for numbers and tables: escaping, number formats, intervals, small tables.

Every text that reaches the site from a record or from contributors passes through ``md_text`` or
``md_code``, which escape what Markdown (and the HTML it may carry) would otherwise obey. The formats
give a metric with its 95% interval and n (``fmt_metric``), and ``table``/``leaf_table`` lay rows out.
Experiments' headlines and the site's pages share these, so this module sits with the contracts.

>>> md_text("<b>bold</b>")
'&#60;b&#62;bold&#60;/b&#62;'
>>> fmt_metric({"value": 0.927, "ci95": [0.857, 0.964], "n": 96})
'0.927 [0.857, 0.964] (n = 96)'
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


def fmt_number(value: object, digits: int = 3) -> str:
    """A number for a table: integers as they are, floats to ``digits`` significant figures.

    >>> [fmt_number(x) for x in (96, 0.9270833, 7.63e-06, 1234.5, 1.0, float("nan"), None)]
    ['96', '0.927', '7.63e-06', '1,234', '1', 'n/a', 'n/a']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):  # a record may put anything where a number usually is
        return md_text(value if isinstance(value, str) else json.dumps(value, default=str))
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if abs(value) < 1e-12:  # floating-point dust (a Wilson bound of 3e-18) is zero
        return "0"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.{max(digits - 1, 0)}e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def fmt_percent(value: float | None, decimals: int = 0) -> str:
    """A rate in [0, 1] as a percentage: ``0.59375`` -> ``59%``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.{decimals}f}%"


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
    ci = metric.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]"
    return "—"


def fmt_metric(metric: Mapping[str, Any], *, with_n: bool = True) -> str:
    """``0.927 [0.857, 0.964] (n = 96)``: a value with its 95% CI."""
    text = fmt_number(metric.get("value"))
    if metric.get("ci95") is not None:
        text += f" {fmt_ci(metric)}"
    if with_n and metric.get("n") is not None:
        text += f" (n = {fmt_number(metric['n'])})"
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
                    fmt_number(v.get("value")),
                    fmt_ci(v),
                    fmt_number(v.get("n")),
                    md_text(v.get("ci_method", "—")),
                ]
                for key, v in items
            ),
        )
    return table(["", "value"], ([md_text(key), fmt_leaf(v)] for key, v in items))
