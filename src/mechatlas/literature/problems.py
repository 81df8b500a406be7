"""One problem the literature referee found: where it is, what is wrong, and how to fix it.

Every reader in this package returns problems instead of raising on the first one, so that
``mechatlas lit check`` can list all of them in one run. A problem prints as
``file:line: what is wrong — how to fix it``, the format editors and CI logs turn into links.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """A fixable problem in a literature or result file; ``line`` is 1-based."""

    file: str
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message} — {self.fix}"


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Order problems by file, then line, so that the report reads top to bottom; drop repeats."""
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.file, p.line))
