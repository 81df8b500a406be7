"""YAML and JSON loading that remembers the line every value came from.

The referee reports each problem as ``file:line``. Plain ``yaml.safe_load`` forgets where things
were, so this module loads through a ``yaml.SafeLoader`` subclass (safe: it builds only plain
mappings, lists and scalars) whose mappings and lists carry the 1-based line of each key and
item. ``line_at`` then finds the line of any value from its path, such as ``("claims", 2, "id")``,
which is also the shape of the locations pydantic puts in its validation errors.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, SequenceNode


class LocatedDict(dict[Any, Any]):
    """A mapping that knows its own line, the line of each key, and any key written twice."""

    line: int = 1

    def __init__(self, line: int = 1) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.repeated_keys: list[tuple[Any, int]] = []


class LocatedList(list[Any]):
    """A list that knows its own line and the line of each item."""

    line: int = 1

    def __init__(self, items: Sequence[Any] = (), line: int = 1, item_lines: Sequence[int] = ()) -> None:
        super().__init__(items)
        self.line = line
        self.item_lines = list(item_lines)


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings and sequences record the lines they start on."""


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)  # resolve `<<` merge keys the way SafeLoader does
    mapping = LocatedDict(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            )
        key_line = key_node.start_mark.line + 1
        if key in mapping:
            # PyYAML silently keeps the last value; a repeated key is almost always a mistake.
            mapping.repeated_keys.append((key, key_line))
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_line
    return mapping


def _construct_sequence(loader: _LineLoader, node: SequenceNode) -> LocatedList:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    lines = [child.start_mark.line + 1 for child in node.value]
    return LocatedList(items, line=node.start_mark.line + 1, item_lines=lines)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_yaml(text: str) -> Any:
    """Parse YAML safely, returning ``LocatedDict``/``LocatedList`` containers; raises ``yaml.YAMLError``."""
    # yaml.load is safe here: _LineLoader is a SafeLoader subclass that only adds line bookkeeping.
    return yaml.load(text, Loader=_LineLoader)


def yaml_error_line(error: yaml.YAMLError) -> int:
    """The 1-based line of a YAML syntax error: where the faulty construct starts for a key missing its
    colon (PyYAML notices that only on the next line), else where the problem was noticed, or 1."""
    context = str(getattr(error, "context", "") or "")
    problem_mark, context_mark = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
    mark = (
        context_mark if context.startswith("while scanning a simple key") and context_mark else problem_mark
    )
    mark = mark or context_mark
    return mark.line + 1 if mark is not None else 1


def yaml_error_text(error: yaml.YAMLError) -> str:
    """The reason for a YAML syntax error in one line, without PyYAML's multi-line source excerpt.

    PyYAML reports where it noticed the error; the construct it was reading may have started earlier
    (an unclosed bracket), so that line is named too.
    """
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    problem_mark = getattr(error, "problem_mark", None)
    if (
        context
        and context_mark is not None
        and (problem_mark is None or context_mark.line != problem_mark.line)
    ):
        context = f"{context} that starts on line {context_mark.line + 1}"
    parts = [part for part in (context, problem) if part]
    return ", ".join(parts) if parts else str(error).splitlines()[0]


def load_json(text: str) -> Any:
    """Parse JSON with ``json`` (the values) and attach lines found by the YAML loader.

    JSON is, for the files we write, valid YAML, so the YAML parser can tell where each key is; the
    values themselves always come from ``json`` because YAML 1.1 reads some JSON numbers differently.
    Raises ``json.JSONDecodeError`` on invalid JSON. If YAML cannot parse the text, every line is 1.
    """
    data = json.loads(text)
    try:
        located = load_yaml(text)
    except yaml.YAMLError:
        located = None
    return _graft(data, located)


def _graft(data: Any, located: Any) -> Any:
    """Copy ``data`` into Located containers, taking lines from ``located`` where the shapes agree."""
    if isinstance(data, dict):
        lines = located if isinstance(located, LocatedDict) else LocatedDict()
        out = LocatedDict(line=lines.line)
        for key, value in data.items():
            out[key] = _graft(value, lines.get(key))
            out.key_lines[key] = lines.key_lines.get(key, lines.line)
        return out
    if isinstance(data, list):
        lines_list = located if isinstance(located, LocatedList) else LocatedList()
        items = [_graft(v, lines_list[i] if i < len(lines_list) else None) for i, v in enumerate(data)]
        item_lines = [
            lines_list.item_lines[i] if i < len(lines_list.item_lines) else lines_list.line
            for i in range(len(data))
        ]
        return LocatedList(items, line=lines_list.line, item_lines=item_lines)
    return data


def line_at(data: Any, path: Sequence[str | int] = ()) -> int:
    """The line of the value at ``path`` inside ``data``, or of its nearest enclosing container.

    A missing key reports the line of the mapping that should hold it, which is where it must be added.
    """
    line = getattr(data, "line", 1)
    node = data
    for step in path:
        if isinstance(node, LocatedDict) and step in node:
            line = node.key_lines.get(step, line)
            node = node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node):
            line = node.item_lines[step] if step < len(node.item_lines) else line
            node = node[step]
        else:
            break
    return line
