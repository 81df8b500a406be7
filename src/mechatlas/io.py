"""Atomic file writing: a crash never leaves a half-written output behind.

Every writer in the library goes through ``atomic_path``: write to a temporary sibling, then
``os.replace`` it into place (atomic on POSIX within one file system). Temporary siblings are named
``.<name>.mechatlas-tmp-<random>`` (``TEMP_MARK``), so a run killed mid-write leaves something the next run
recognises and removes (``mechatlas.pipeline.runner``), and results get the ordinary permissions of a new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mechatlas.errors import ArtifactError

#: Part of every temporary sibling's name; nothing else in the tree carries it.
TEMP_MARK = ".mechatlas-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}{TEMP_MARK}", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary file
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; swap it into place only if the block succeeds."""
    import shutil

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (sorted keys keep hashes stable)."""
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_jsonl(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> None:
    with atomic_path(path, ".jsonl") as tmp, tmp.open("w") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


# --- reading artefacts back: a damaged or changed file is refused, never computed on ---------------------


def model_source_kind(source: str) -> str:
    """Where a model ``source`` is read from: ``local`` (an existing folder), ``missing`` (written as a path,
    with ``.``, ``/`` or ``~`` in front or more than one ``/``, but absent) or ``hub`` (anything else: an
    ``org/name`` id, or a bare name such as ``gpt2``).

    >>> model_source_kind("Qwen/Qwen3-0.6B"), model_source_kind("./no/such/folder")
    ('hub', 'missing')
    """
    if Path(source).exists():
        return "local"
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        return "missing"
    return "hub"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in blocks (activation arrays can be gigabytes)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """``{name: sha256}`` for files in ``folder``, to record beside them when they are written."""
    return {name: sha256_file(folder / name) for name in sorted(names)}


def check_digests(folder: Path, recorded: object, record: Path, remedy: str) -> None:
    """Refuse files whose bytes differ from the sha256 recorded in ``record`` when they were written."""
    if not isinstance(recorded, dict) or not recorded:
        raise ArtifactError(f"{record}: records no file hashes (written by an older version); {remedy}")
    for name, expected in sorted(recorded.items()):
        path = folder / name
        if not path.exists():
            raise ArtifactError(f"{path}: missing; {remedy}")
        if sha256_file(path) != expected:
            raise ArtifactError(
                f"{path}: changed or damaged since it was written (its sha256 differs from the one in "
                f"{record.name}); {remedy}"
            )


def read_json(path: Path, remedy: str) -> Any:
    """A JSON artefact, or one line naming the file and the remedy when it is missing or not JSON."""
    if not path.exists():
        raise ArtifactError(f"{path}: missing; {remedy}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        line = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise ArtifactError(f"{path}: not valid JSON{line}; it is damaged: {remedy}") from None


def read_safetensors(path: Path, remedy: str) -> dict[str, Any]:
    """All tensors of a safetensors file; a missing, truncated or malformed file is one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise ArtifactError(f"{path}: missing; {remedy}")
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError) as error:
        raise ArtifactError(f"{path}: damaged safetensors ({str(error).splitlines()[0]}); {remedy}") from None


def load_npy(path: Path, remedy: str) -> Any:
    """A ``.npy`` array, memory-mapped; a missing or truncated file is one line."""
    import numpy as np

    if not path.exists():
        raise ArtifactError(f"{path}: missing; {remedy}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ArtifactError(f"{path}: damaged array ({str(error).splitlines()[0]}); {remedy}") from None


def load_yaml_strict(text: str) -> Any:
    """``yaml.safe_load``, refusing a key written twice in one mapping (YAML would keep the last silently)."""
    import yaml

    return yaml.load(text, Loader=_strict_loader())


def _strict_loader() -> Any:
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key `{key}` is written twice in one mapping; keep one",
                        key_node.start_mark,
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader
