"""The package layout is the architecture: layers import only downwards, and each concept lives once."""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src" / "mechatlas"
MAX_LINES = 500

# Each layer may import from itself and the layers before it. The contracts come first.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "io", "numerics", "config", "paths", "records", "stats", "prompts", "markdown"),
    ("interp",),
    ("organism", "experiments"),
    ("literature", "site", "bench"),
    ("cli", "pipeline"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every ``mechatlas`` module a file imports, at any depth (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mechatlas"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mechatlas")}
    return found


def layer_of(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else ""
    return next((i for i, layer in enumerate(LAYERS) if top in layer), None)


SOURCES = sorted(SRC.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    tops = {module_name(p).split(".")[1] for p in SOURCES if "." in module_name(p)}
    assert {t for t in tops if layer_of(f"mechatlas.{t}") is None} == set()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_a_module_imports_only_from_its_own_layer_or_below(path: Path) -> None:
    own = layer_of(module_name(path))
    if own is None:  # the package's own __init__
        return
    upward = sorted(m for m in imports(path) if (layer := layer_of(m)) is not None and layer > own)
    assert upward == [], f"{path.relative_to(REPO)} imports from a higher layer: {upward}"


def test_the_library_knows_no_configuration_paths_or_experiments() -> None:
    forbidden = ("mechatlas.config", "mechatlas.paths", "mechatlas.records", "mechatlas.experiments")
    offenders = {
        str(p.relative_to(REPO)): sorted(m for m in imports(p) if m.startswith(forbidden))
        for p in (SRC / "interp").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_experiment_imports_another() -> None:
    packages = [p for p in (SRC / "experiments").iterdir() if (p / "__init__.py").exists()]
    assert len(packages) >= 2
    for package in packages:
        others = [f"mechatlas.experiments.{o.name}" for o in packages if o != package]
        for path in package.rglob("*.py"):
            crossing = sorted(m for m in imports(path) if m.startswith(tuple(others)))
            assert crossing == [], f"{path.relative_to(REPO)} imports another experiment: {crossing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_longer_than_a_chapter(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines; split it by concept"


@functools.cache
def definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in SOURCES:
        for node in ast.parse(path.read_text()).body:
            names: list[str] = []
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            for name in names:
                found[name].append(module_name(path))
    return found


@pytest.mark.parametrize(
    "name",
    [
        "orthonormal_basis",
        "encode_prompts",
        "left_pad",
        "Judge",
        "SubstringJudge",
        "ClassifierJudge",
        "RefusalMeter",
        "Hook",
        "write_result",
        "ParamsOption",
        "ActivationStore",
        "bootstrap_ci",
    ],
)
def test_each_shared_concept_is_defined_once(name: str) -> None:
    assert len(definitions()[name]) == 1, f"{name} is defined in {definitions()[name]}"


def test_code_and_tests_do_not_talk_about_issues() -> None:
    import re

    pattern = re.compile(r"\b[Ii]ssue #?\d+")
    files = [*SOURCES, *(REPO / "tests").glob("*.py"), *(REPO / "workflow").rglob("*.smk")]
    files += [REPO / "params.yaml", REPO / "dvc.yaml", REPO / "workflow" / "Snakefile"]
    hits = [
        f"{p.relative_to(REPO)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
