"""Deferred imports for the command line.

The CLI mounts every stage's command group at start-up; importing the stage modules eagerly would load
torch, transformers and pandas (seconds) just to print ``mechatlas --help``. A ``LazyModule`` imports its
module on first attribute access instead.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)
