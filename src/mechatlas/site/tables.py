"""Metrics as Markdown tables: any result record, rendered generically, plus headlines per experiment.

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

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mechatlas.site.text import fmt_number, md_code, md_text

FOLD_ABOVE = 40  # a branch with more leaves than this is folded (flattened, collapsible)
GRID_COLUMNS = 8  # the most columns a grid may have before it is transposed
LIST_PREVIEW = 12  # values of a number list shown inline


def is_metric(value: object) -> bool:
    """A leaf with a value and its uncertainty: ``{"value", "ci95", "n", ...}``."""
    return isinstance(value, Mapping) and "value" in value and ("ci95" in value or "n" in value)


def _is_leaf(value: object) -> bool:
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


def _leaf_table(items: list[tuple[str, Any]]) -> list[str]:
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


def grid(node: Mapping[str, Any]) -> list[str] | None:
    """A branch of branches of leaves as one table (rows × columns), or None if it is not one.

    Columns whose metrics all share one n carry it in the header, to keep cells short.
    """
    if not node or not all(isinstance(v, Mapping) and v and not is_metric(v) for v in node.values()):
        return None
    if not all(all(_is_leaf(x) and not isinstance(x, list) for x in v.values()) for v in node.values()):
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


def _heading(level: int, text: str) -> str:
    return f"{'#' * level} {text}" if level <= 6 else f"**{text}**"


def _folded(value: object) -> list[str]:
    leaves = flatten(value)
    rows = (
        [md_text(path), fmt_leaf(v, with_n=False) if is_metric(v) else fmt_leaf(v), fmt_number(v.get("n"))]
        if is_metric(v)
        else [md_text(path), fmt_leaf(v), ""]
        for path, v in leaves
    )
    body = table(["path", "value [95% CI]", "n"], rows)
    return [
        f'??? note "Show all {len(leaves)} values"',
        "",
        *("    " + line if line else "" for line in body),
    ]


def render_metrics(metrics: Mapping[str, Any], level: int = 3, prefix: str = "") -> str:
    """Every number of a record, as headed tables; headings are dotted paths (``refusal_rate.logit``)."""
    return "\n".join(_render(metrics, level, prefix)).rstrip() + "\n"


def _render(node: Mapping[str, Any], level: int, prefix: str) -> list[str]:
    lines: list[str] = []
    leaves = [(str(k), v) for k, v in node.items() if _is_leaf(v)]
    if leaves:
        lines += _leaf_table(leaves)
    for key, value in node.items():
        if _is_leaf(value):
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        lines += [_heading(level, md_text(path)), ""]
        if isinstance(value, list):
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


def refusal_direction_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Conditions × (harmful, harmless) refusal rates and the capability cost, controls marked."""
    judge = str(metrics["verdict_judge"])
    rates = metrics["refusal_rate"][judge]
    conditions = metrics.get("conditions", {})
    capability = metrics.get("capability", {})
    rows = []
    for name, by_label in rates.items():
        condition = conditions.get(name, {})
        control = condition.get("direction") in ("random", "none")
        what = (
            "no intervention"
            if condition.get("direction") == "none"
            else f"{condition.get('harmful', '?')} (harmful) / {condition.get('harmless', '?')} (harmless), "
            f"{condition.get('direction', '?')} direction"
        )
        delta = capability.get(name, {}).get("delta_ce")
        rows.append(
            [
                f"**{md_text(name)}**" if not control else md_text(name),
                md_text(what),
                "control" if control else "test",
                fmt_leaf(by_label.get("harmful")),
                fmt_leaf(by_label.get("harmless")),
                fmt_leaf(delta) if delta is not None else "—",
            ]
        )
    lines = [
        f"Refusal rates on held-out test prompts, judged by {md_code(judge)} (the judge the verdicts use), "
        "with 95% Wilson intervals. Controls: the unmodified model, and the same interventions with a "
        "random direction of equal norm.",
        "",
        *table(
            [
                "condition",
                "intervention",
                "role",
                "harmful refused",
                "harmless refused",
                "ΔCE harmless (nats)",
            ],
            rows,
        ),
    ]
    selected = metrics.get("selected_direction")
    if isinstance(selected, Mapping):
        facts = [(k, v) for k, v in selected.items() if _is_leaf(v)]
        lines += ["The selected direction:", "", *_leaf_table(facts)]
    return lines


def organism_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Refusal rates on the generated held-out split and on hand-written prompts, and a few replies."""
    sets = {"generated test split": metrics["refusal_rate"]}
    if isinstance(metrics.get("refusal_rate_by_framing"), Mapping):
        sets["same, CI over framings"] = metrics["refusal_rate_by_framing"]
    if isinstance(metrics.get("handwritten"), Mapping):
        sets["hand-written prompts"] = metrics["handwritten"]["refusal_rate"]
    control = metrics.get("lexical_control")
    if isinstance(control, Mapping):
        for key, name in (("refusal_rate", "test split"), ("handwritten", "hand-written")):
            if isinstance(control.get(key), Mapping):
                sets[f"bag-of-words control, {name}"] = control[key]
    groups = [
        g for g in ("harmful", "harmless", "alarming_harmless") if any(g in rates for rates in sets.values())
    ]
    lines = [
        f"Share of replies judged refusals ({md_text(metrics.get('judge', 'substring judge'))}), with 95% "
        "intervals: on held-out prompts generated like the training data but unseen, and on prompts "
        "written by hand in other wording. Alarming-looking harmless prompts are the over-refusal control."
        + (
            " Wilson intervals treat prompts as independent; prompts that share a framing are not, so the "
            "column 'CI over framings' resamples whole framings (a cluster bootstrap)."
            if "refusal_rate_by_framing" in metrics
            else ""
        )
        + (
            " The bag-of-words control is a word-counting classifier trained on the same training prompts "
            f"({md_text(control.get('method', ''))}): where it matches the organism, which words occur is "
            "enough to tell the prompts apart."
            if isinstance(control, Mapping)
            else ""
        ),
        "",
        *table(
            ["prompts", *(md_text(name) for name in sets)],
            ([md_text(g), *(fmt_leaf(rates.get(g)) for rates in sets.values())] for g in groups),
        ),
    ]
    examples = metrics.get("examples")
    if isinstance(examples, Mapping):
        rows = [
            [
                md_text(group),
                md_text(e.get("prompt", "")),
                md_text(e.get("reply", "")),
                fmt_leaf(e.get("refused")),
            ]
            for group, items in examples.items()
            if isinstance(items, list)
            for e in items[:2]
            if isinstance(e, Mapping)
        ]
        if rows:
            lines += [
                "Example replies (greedy decoding):",
                "",
                *table(["prompts", "prompt", "reply", "refused"], rows),
            ]
    return lines


def dimensionality_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Layer × estimator: the estimated dimension of refusal, with its 95% CI, at the selected position."""
    rows = [r for r in metrics["dimensionality"]["table"] if r.get("selected_position")]
    flat = {int(r["layer"]): r.get("note") for r in rows if r.get("note")}  # e.g. an embedding layer
    estimators: list[str] = []
    by_layer: dict[int, dict[str, str]] = {}
    for r in rows:
        if int(r["layer"]) in flat:
            continue
        estimator = str(r["estimator"])
        if estimator not in estimators:
            estimators.append(estimator)
        k = r.get("k")
        if k is None:
            cell = md_text(r.get("control") or "not reached")
        else:
            cell = fmt_number(k)
            if r.get("ci_low") is not None and r.get("ci_high") is not None:
                cell += f" [{fmt_number(r['ci_low'])}, {fmt_number(r['ci_high'])}]"
        by_layer.setdefault(int(r["layer"]), {})[estimator] = cell
    selected = metrics["dimensionality"].get("selected", {})
    lines = [
        "The number of dimensions refusal takes, per layer, at the selected prompt position "
        f"({md_code(selected.get('token', '?'))}, position {md_text(selected.get('position', '?'))}), by each "
        "estimator, with 95% bootstrap intervals. The causal rows count how many top directions must be "
        "ablated before harmful refusal falls below the threshold; the random-direction row is their control.",
        "",
        *table(
            ["layer", *(md_text(e) for e in estimators)],
            (
                [str(layer), *(cells.get(e, "—") for e in estimators)]
                for layer, cells in sorted(by_layer.items())
            ),
        ),
    ]
    lines += [f"Layer {layer}: {md_text(note)}; no estimate.\n" for layer, note in sorted(flat.items())]
    return lines


HEADLINES: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "dimensionality": dimensionality_headline,
    "organism": organism_headline,
    "refusal_direction": refusal_direction_headline,
}


def headline(experiment: str, metrics: Mapping[str, Any]) -> str | None:
    """The experiment's headline tables, or None when it has none (or the record lacks its keys)."""
    make = HEADLINES.get(experiment)
    if make is None:
        return None
    try:
        return "\n".join(make(metrics)).rstrip() + "\n"
    except (KeyError, TypeError, AttributeError):
        return None  # a record in an older or newer shape: the generic tables still show everything
