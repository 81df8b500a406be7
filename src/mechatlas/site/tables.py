"""Metrics as Markdown tables: any result record, rendered generically, plus each experiment's headline.

Every experiment writes its numbers in its own shape, but the leaves share one: a *metric* is a mapping
with a ``value`` and its ``ci95`` and ``n`` (``mechatlas.stats.rate`` and the bootstrap helpers write
it). ``render_metrics`` walks any record and picks a table per branch:

- a branch of leaves (metrics, numbers, text) is a two-column or metric table;
- a branch of branches of leaves is a grid (``refusal_rate.substring``: condition × label);
- a list of records is a table with one row per record;
- a branch too big to read at a glance is folded into a collapsible block, flattened.

Each heading is the dotted path of its branch, which is also what the ``{{ metric(...) }}`` macro
takes, so a post author can copy a path from a result page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechatlas.experiments import registry
from mechatlas.markdown import (
    _compact,
    fmt_leaf,
    fmt_number,
    heatmap,
    is_leaf,
    is_matrix,
    is_metric,
    leaf_table,
    md_text,
    table,
)

FOLD_ABOVE = 40  # a branch with more leaves than this is folded (flattened, collapsible)
GRID_COLUMNS = 8  # the most columns a grid may have before it is transposed


def grid(node: Mapping[str, Any]) -> list[str] | None:
    """A branch of branches of leaves as one table (rows × columns), or None if it is not one.

    Columns whose metrics all share one n carry it in the header, to keep cells short.
    """
    if not node or not all(isinstance(v, Mapping) and v and not is_metric(v) for v in node.values()):
        return None
    if not all(all(is_leaf(x) and not isinstance(x, list) for x in v.values()) for v in node.values()):
        return None
    inner: list[str] = []
    for v in node.values():
        inner += [k for k in v if k not in inner]
    rows: dict[str, Mapping[str, Any]]
    if len(inner) <= GRID_COLUMNS:
        rows, columns = dict(node), inner
    elif len(node) <= GRID_COLUMNS:
        rows = {key: {outer: node[outer].get(key) for outer in node if key in node[outer]} for key in inner}
        columns = list(node)
    else:
        return None
    header = [""]
    shared_n: dict[str, Any] = {}
    for column in columns:
        cells = [row[column] for row in rows.values() if column in row]
        ns = {cell.get("n") for cell in cells if is_metric(cell)}
        if cells and all(is_metric(c) for c in cells) and len(ns) == 1:
            shared_n[column] = ns.pop()
            header.append(f"{md_text(column)} (n = {fmt_number(shared_n[column])})")
        else:
            header.append(md_text(column))
    body = [
        [md_text(name)] + [fmt_leaf(row[c], with_n=c not in shared_n) if c in row else "—" for c in columns]
        for name, row in rows.items()
    ]
    return table(header, body)


def _records_table(items: list[Any]) -> list[str]:
    columns: list[str] = []
    for item in items:
        columns += [k for k in item if k not in columns]
    return table([md_text(c) for c in columns], ([fmt_leaf(item.get(c)) for c in columns] for item in items))


def count_leaves(value: object) -> int:
    if isinstance(value, Mapping) and not is_metric(value):
        return sum(count_leaves(v) for v in value.values())
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return sum(count_leaves(v) for v in value)
    return 1


def flatten(value: object, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves with their dotted paths (list items by index)."""
    if isinstance(value, Mapping) and not is_metric(value):
        out: list[tuple[str, Any]] = []
        for key, child in value.items():
            out += flatten(child, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [pair for i, child in enumerate(value) for pair in flatten(child, f"{prefix}.{i}")]
    return [(prefix, value)]


def _parent(value: object, path: str) -> Mapping[str, Any]:
    """The mapping that holds the leaf at dotted ``path`` (for a matrix's sibling labels)."""
    node: Any = value
    for part in path.split(".")[:-1]:
        if isinstance(node, Mapping):
            node = node.get(part, {})
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
    return node if isinstance(node, Mapping) else {}


def _heading(level: int, text: str) -> str:
    return f"{'#' * level} {text}" if level <= 6 else f"**{text}**"


def _labels(parent: Mapping[str, Any], matrix: list[Any]) -> tuple[list[str] | None, list[str] | None]:
    """Row and column names for a matrix: a sibling list of names of the right length (domains...)."""
    names = [v for v in parent.values() if isinstance(v, list) and v and all(isinstance(x, str) for x in v)]
    rows = next((n for n in names if len(n) == len(matrix)), None)
    columns = next((n for n in names if len(n) == len(matrix[0])), None)
    return rows, columns


def _folded(value: object) -> list[str]:
    everything = flatten(value)
    leaves = [(path, v) for path, v in everything if not is_matrix(v)]
    matrices = [(path, v) for path, v in everything if is_matrix(v)]
    rows = (
        [md_text(path), fmt_leaf(v, with_n=False) if is_metric(v) else fmt_leaf(v), fmt_number(v.get("n"))]
        if is_metric(v)
        else [md_text(path), fmt_leaf(v), ""]
        for path, v in leaves
    )
    body = table(["path", "value [95% CI]", "n"], rows)
    for path, matrix in matrices:
        parent = _parent(value, path)
        body += [f"**{md_text(path)}**", "", *heatmap(matrix, *_labels(parent, matrix))]
    return [
        f'??? note "Show all {len(leaves) + len(matrices)} values"',
        "",
        *("    " + line if line else "" for line in body),
    ]


def render_metrics(metrics: Mapping[str, Any], level: int = 3, prefix: str = "") -> str:
    """Every number of a record, as headed tables; headings are dotted paths (``refusal_rate.logit``)."""
    return "\n".join(_render(metrics, level, prefix)).rstrip() + "\n"


def _render(node: Mapping[str, Any], level: int, prefix: str) -> list[str]:
    lines: list[str] = []
    leaves = [(str(k), v) for k, v in node.items() if is_leaf(v)]
    if leaves:
        lines += leaf_table(leaves)
    for key, value in node.items():
        if is_leaf(value):
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        lines += [_heading(level, md_text(path)), ""]
        if is_matrix(value):
            lines += heatmap(value, *_labels(node, value))
        elif isinstance(value, list):
            if all(isinstance(v, Mapping) for v in value):
                lines += _folded(value) if count_leaves(value) > FOLD_ABOVE else _records_table(value)
            else:
                lines += [md_text(_compact(value, 400)), ""]
        elif count_leaves(value) > FOLD_ABOVE:
            lines += _folded(value)
        elif (as_grid := grid(value)) is not None:
            lines += as_grid
        else:
            lines += _render(value, level + 1, path)
    return lines


# --- Headlines: the few numbers that carry an experiment's verdicts, shown first -----------------


def headline(experiment: str, metrics: Mapping[str, Any]) -> str | None:
    """The experiment's headline tables, or None when it has none (or the record lacks its keys).

    The headline maker is the one ``mechatlas.experiments.registry`` names for the experiment, imported
    on first use; an experiment the registry does not know has no headline.
    """
    entry = registry.find(experiment)
    make = entry.headline_function() if entry is not None else None
    if make is None:
        return None
    try:
        return "\n".join(make(metrics)).rstrip() + "\n"
    except (KeyError, TypeError, AttributeError):
        return None  # a record in an older or newer shape: the generic tables still show everything


def findings(experiment: str, metrics: Mapping[str, Any]) -> list[str]:
    """What the experiment found, as plain sentences (not yet escaped), or [] when it cannot say.

    The sentences come from the findings maker the registry names for the experiment; a record in an
    older or newer shape, lacking a number a sentence needs, gives no sentences rather than a wrong one.
    """
    entry = registry.find(experiment)
    make = entry.findings_function() if entry is not None else None
    if make is None:
        return []
    try:
        return [sentence for sentence in make(metrics) if sentence]
    except (KeyError, TypeError, AttributeError, IndexError, ValueError):
        return []
