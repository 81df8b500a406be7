"""Reading YAML data files and turning validation errors into referee problems with a line and a fix.

The taxonomy and the paper files are validated with frozen pydantic models (``extra="forbid"``, so a
misspelt field is an error, not a silently ignored key). Pydantic reports every error with a location
such as ``("claims", 2, "id")``; ``located.line_at`` turns that into a line of the YAML file, and this
module words the error for a person.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mechatlas.literature.located import (
    LocatedDict,
    LocatedList,
    line_at,
    load_yaml,
    yaml_error_line,
    yaml_error_text,
)
from mechatlas.literature.problems import Problem


def validation_problems(
    error: ValidationError, raw: Any, model: type[BaseModel], file: str, prefix: Sequence[str | int] = ()
) -> list[Problem]:
    """One problem per pydantic error; ``prefix`` is where ``raw`` sits inside the file's data."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        line = line_at(raw, loc)
        name = ".".join(str(step) for step in (*prefix, *loc)) or "the file"
        kind = item["type"]
        if kind == "missing":
            message = f"`{name}` is missing"
            fix = f"add `{loc[-1]}:` here"
        elif kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            message = f"unknown field `{name}`"
            fix = f"remove it or fix its spelling (allowed: {', '.join(allowed)})" if allowed else "remove it"
        elif kind == "enum":
            message = f"`{name}` is {item['input']!r}"
            fix = f"use one of {item.get('ctx', {}).get('expected', 'the allowed values')}"
        else:
            message = f"`{name}`: {item['msg'].removeprefix('Value error, ')}"
            fix = "see CONTRIBUTING.md for the format of this file"
        problems.append(Problem(file, line, message, fix))
    return problems


def _fields_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The field names allowed at ``path`` inside ``model`` (following lists and nested models)."""
    current: Any = model
    for step in path:
        if isinstance(step, int):
            continue
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or step not in current.model_fields
        ):
            return []
        current = _inner_model(current.model_fields[step].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    """The model class inside ``tuple[Model, ...]``, ``Model | None`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            inner = _inner_model(arg)
            if inner is not None:
                return inner
    return None


def repeated_key_problems(data: Any, file: str) -> list[Problem]:
    """A key written twice in one mapping: YAML keeps only the last value, silently."""
    problems = []
    if isinstance(data, LocatedDict):
        for key, line in data.repeated_keys:
            problems.append(
                Problem(file, line, f"`{key}` is written twice in the same mapping", "keep one of them")
            )
        for value in data.values():
            problems.extend(repeated_key_problems(value, file))
    elif isinstance(data, LocatedList):
        for value in data:
            problems.extend(repeated_key_problems(value, file))
    return problems


def read_yaml_file(path: Path, file: str) -> tuple[Any, list[Problem]]:
    """Load a YAML file with line numbers; a syntax error is one problem at its line, never a crash."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        return None, [
            Problem(
                file,
                yaml_error_line(error),
                f"YAML syntax error: {yaml_error_text(error)}",
                "fix the YAML syntax (check indentation, colons and quotes)",
            )
        ]
    except UnicodeDecodeError:
        return None, [Problem(file, 1, "the file is not UTF-8 text", "save it as UTF-8")]
    return data, repeated_key_problems(data, file)
