"""The vocabulary of the organism's synthetic instructions, read from ``data/organism/vocabulary.yaml``.

The words themselves are data: that file holds every task, pattern, framing and reply, with comments on
how requests are built from them. This module reads it, checks its shape, and expands each domain's
patterns into tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from mechatlas.errors import ConfigError
from mechatlas.paths import ORGANISM_VOCABULARY as VOCABULARY


@dataclass(frozen=True)
class Patterns:
    """A domain's pattern x object tasks: each pattern's ``{x}`` is filled with each object."""

    patterns: tuple[str, ...]
    objects: tuple[str, ...]

    def tasks(self) -> list[str]:
        return [pattern.format(x=obj) for pattern in self.patterns for obj in self.objects]


@dataclass(frozen=True)
class Vocabulary:
    """Everything the organism's instructions are built from, in file order (the order is part of the seed)."""

    harmful_tasks: Mapping[str, tuple[str, ...]]
    harmful_patterns: Mapping[str, Patterns]
    harmless_tasks: Mapping[str, tuple[str, ...]]
    harmless_patterns: Mapping[str, Patterns]
    alarming_harmless_tasks: tuple[str, ...]
    framings: tuple[str, ...]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    refusals: tuple[str, ...]
    compliance_openers: tuple[str, ...]
    compliance_steps: tuple[str, ...]

    def all_harmful_tasks(self) -> dict[str, list[str]]:
        """Every harmful task: the hand-written ones plus each domain's patterns applied to its objects."""
        return {d: [*self.harmful_tasks[d], *p.tasks()] for d, p in self.harmful_patterns.items()}

    def all_harmless_tasks(self) -> dict[str, list[str]]:
        """Every benign task: the hand-written ones plus each domain's patterns applied to its objects."""
        return {d: [*self.harmless_tasks[d], *p.tasks()] for d, p in self.harmless_patterns.items()}


_SECTIONS = tuple(f.name for f in fields(Vocabulary))


def _describe(value: Any) -> str:
    """What a YAML value is, for an error message: "empty", "an empty list", "an int (3)"."""
    if value is None:
        return "empty"
    kind = type(value).__name__
    if isinstance(value, (list, dict)) and not value:
        return f"an empty {kind}"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({repr(value)[:40]})"


class _Reader:
    """Shape checks for one vocabulary file; each failure names the file, the key and the fix."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.path}: `{key}` {problem}; {fix}")

    def section(self, key: str) -> Any:
        if key not in self.data:
            raise self.fail(key, "is missing", f"add a top-level `{key}:` section, as in {VOCABULARY}")
        return self.data[key]

    def strings(self, value: Any, key: str, *, contains: str = "") -> tuple[str, ...]:
        """A non-empty list of strings, each containing ``contains`` (only prefixes/suffixes may be "")."""
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"is {_describe(value)}", "make it a non-empty list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{i}]", f"is {_describe(item)}", "make it a string (quote it)")
            if not item and key not in ("prefixes", "suffixes"):
                raise self.fail(f"{key}[{i}]", "is empty", "write the text or remove the entry")
            if contains not in item:
                raise self.fail(f"{key}[{i}]", f"is {item!r} without {contains}", f"put {contains} in it")
        return tuple(value)

    def domains(self, key: str) -> dict[str, Any]:
        value = self.section(key)
        if not isinstance(value, dict) or not value or not all(isinstance(d, str) and d for d in value):
            raise self.fail(key, f"is {_describe(value)}", "make it a mapping of domain names to entries")
        return value

    def tasks(self, key: str) -> dict[str, tuple[str, ...]]:
        return {domain: self.strings(v, f"{key}.{domain}") for domain, v in self.domains(key).items()}

    def patterns(self, key: str, tasks_key: str, tasks: Mapping[str, Any]) -> dict[str, Patterns]:
        out = {}
        for domain, value in self.domains(key).items():
            where = f"{key}.{domain}"
            if not isinstance(value, dict) or set(value) != {"patterns", "objects"}:
                problem = f"has the keys {sorted(map(str, value))}" if isinstance(value, dict) else None
                fix = "give it exactly two lists, `patterns:` and `objects:`"
                raise self.fail(where, problem or f"is {_describe(value)}", fix)
            out[domain] = Patterns(
                self.strings(value["patterns"], f"{where}.patterns", contains="{x}"),
                self.strings(value["objects"], f"{where}.objects"),
            )
        if list(out) != list(tasks):
            odd = [d for d in [*tasks, *out] if (d in tasks) != (d in out)]
            problem = f"differs from `{tasks_key}` in its domains ({', '.join(odd) or 'their order'})"
            raise self.fail(key, problem, "give both sections the same domains, in the same order")
        return out


def load_vocabulary(path: Path = VOCABULARY) -> Vocabulary:
    """Read and check a vocabulary file; a missing or malformed one is a ``ConfigError`` saying what to fix."""
    if not path.exists():
        raise ConfigError(
            f"{path}: missing; pass an existing vocabulary file (the shipped one is {VOCABULARY})"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML ({where}{problem}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: holds {_describe(data)}, not a mapping of sections; restore it from git")
    read = _Reader(path, data)
    for key in data:
        if key not in _SECTIONS:
            raise read.fail(
                str(key), "is not a section", f"rename or remove it (sections: {', '.join(_SECTIONS)})"
            )
    harmful, harmless = read.tasks("harmful_tasks"), read.tasks("harmless_tasks")

    def lists(key: str, contains: str = "") -> tuple[str, ...]:
        return read.strings(read.section(key), key, contains=contains)

    return Vocabulary(
        harmful_tasks=harmful,
        harmful_patterns=read.patterns("harmful_patterns", "harmful_tasks", harmful),
        harmless_tasks=harmless,
        harmless_patterns=read.patterns("harmless_patterns", "harmless_tasks", harmless),
        alarming_harmless_tasks=lists("alarming_harmless_tasks"),
        framings=lists("framings", contains="{t}"),
        prefixes=lists("prefixes"),
        suffixes=lists("suffixes"),
        refusals=lists("refusals"),
        compliance_openers=lists("compliance_openers"),
        compliance_steps=lists("compliance_steps"),
    )
