"""The code dependencies of every DVC stage, computed from the imports its rules can run.

DVC reruns a stage when one of its ``deps`` changes. For the code, the right list is every library
file the stage's Snakemake rules can execute: each rule's script, and that script's ``mechatlas``
imports followed transitively (lazy imports inside functions, and modules named by strings such as the
registry's headline paths, included, so the list errs toward rerunning). ``mechatlas workflow deps`` writes that list into ``dvc.yaml``; a test checks the committed
file agrees, so moving or adding a module can never leave a result silently stale.

Only the ``src/`` and ``workflow/scripts/`` entries of a stage's ``deps`` are rewritten; data inputs stay
where they are, in their order.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from mechatlas.errors import ConfigError

CODE_PREFIXES = ("src/", "workflow/scripts/")
_STAGE = re.compile(r"^  ([\w-]+):\s*$")
_DOTTED = re.compile(r"^mechatlas(\.\w+)+(:\w+)?$")
_RULES = re.compile(r"--allowed-rules ([\w ]+?) --forcerun")


def _mechatlas_imports(path: Path, package: str) -> set[str]:
    """Every ``mechatlas`` module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*parts, *([node.module] if node.module else [])])
            # `from a import b` may import the submodule a.b; names that are not modules drop out below.
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.match(node.value):
            found.add(node.value.partition(":")[0])  # a module named by string, imported with importlib
    return {name for name in found if name.split(".")[0] == "mechatlas"}


def _module_file(root: Path, name: str) -> Path | None:
    base = root / "src" / Path(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def code_closure(root: Path, script: Path) -> set[Path]:
    """The library files ``script`` can execute: its ``mechatlas`` imports, transitively."""
    files: set[Path] = set()
    todo = list(_mechatlas_imports(script, ""))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            path = _module_file(root, ".".join(parts[:depth]))
            if path is None or path in files:
                continue
            files.add(path)
            package = ".".join(parts[: depth if path.name == "__init__.py" else depth - 1])
            todo += _mechatlas_imports(path, package)
    return files


def rule_scripts(root: Path) -> dict[str, Path]:
    """Each Snakemake rule's script (``script: "../scripts/<name>.py"``), by rule name."""
    scripts: dict[str, Path] = {}
    for smk in sorted((root / "workflow/rules").glob("*.smk")):
        for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), re.M):
            match = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+\.py)"', body)
            if match:
                scripts[rule] = root / "workflow/scripts" / match.group(1)
    return scripts


def stage_code(root: Path, dvc_file: Path) -> dict[str, list[str]]:
    """Per DVC stage, the sorted code files (relative to ``root``) its rules can run."""
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    scripts = rule_scripts(root)
    code: dict[str, list[str]] = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)  # `foreach` stages keep theirs under `do`
        match = _RULES.search(body["cmd"])
        if match is None:
            raise ConfigError(
                f"{dvc_file}: stage `{name}` must name its rules with --allowed-rules ... --forcerun"
            )
        missing = [rule for rule in match.group(1).split() if rule not in scripts]
        if missing:
            raise ConfigError(
                f"{dvc_file}: stage `{name}` runs rule(s) {missing} that have no script in workflow/rules"
            )
        files: set[Path] = set()
        for rule in match.group(1).split():
            files |= code_closure(root, scripts[rule]) | {scripts[rule]}
        code[name] = sorted(str(f.relative_to(root)) for f in files)
    return code


def with_code_deps(root: Path, dvc_file: Path) -> str:
    """``dvc.yaml``'s text with every stage's code deps replaced by ``stage_code`` (comments kept)."""
    code = stage_code(root, dvc_file)
    out: list[str] = []
    stage: str | None = None
    in_deps = False
    item_indent = ""
    for line in dvc_file.read_text().splitlines(keepends=True):
        if (match := _STAGE.match(line)) is not None:
            stage, in_deps = match.group(1), False
        stripped = line.strip()
        if in_deps:
            if stripped.startswith("- "):
                item_indent = line[: len(line) - len(line.lstrip())]
                if stripped[2:].startswith(CODE_PREFIXES):
                    continue  # regenerated below
                out.append(line)
                continue
            in_deps = False
            out += [f"{item_indent}- {path}\n" for path in code.get(stage or "", [])]
        if stripped == "deps:":
            in_deps = True
        out.append(line)
    if in_deps:
        out += [f"{item_indent}- {path}\n" for path in code.get(stage or "", [])]
    return "".join(out)
