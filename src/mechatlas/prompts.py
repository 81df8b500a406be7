"""Prompt records: the schema every prompt set is mapped into, and loaders for public sets.

A record (one JSON object per line) has ``id``, ``text``, ``label`` (``harmful`` | ``harmless``),
``domain``, ``split`` (``train`` | ``val`` | ``test``) and ``source``. Project-authored sets live in
``data/prompts/``; public sets (AdvBench, HarmBench, JailbreakBench, StrongREJECT, Alpaca, XSTest)
are read from a local file or a Hugging Face dataset id and mapped into the same schema.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mechatlas.errors import DatasetLoadError, PromptSchemaError
from mechatlas.io import write_jsonl

Label = Literal["harmful", "harmless"]
Split = Literal["train", "val", "test"]
LABELS: tuple[str, ...] = ("harmful", "harmless")
SPLITS: tuple[str, ...] = ("train", "val", "test")
FIELDS: tuple[str, ...] = ("id", "text", "label", "domain", "split", "source")
#: The longest prompt text accepted, in characters (the models' own context limits are checked at encoding).
MAX_PROMPT_CHARS = 8_000


@dataclass(frozen=True)
class PromptRecord:
    id: str
    text: str
    label: Label
    domain: str
    split: Split
    source: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def validate_record(obj: Any, where: str) -> PromptRecord:
    """Check one parsed JSON object against the schema; ``where`` is ``file:line`` for the message."""
    if not isinstance(obj, dict):
        raise PromptSchemaError(f"{where}: a prompt record must be a JSON object, got {type(obj).__name__}")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise PromptSchemaError(
            f"{where}: missing field(s) {', '.join(missing)}; every record needs {', '.join(FIELDS)}"
        )
    extra = sorted(set(obj) - set(FIELDS))
    if extra:
        raise PromptSchemaError(
            f"{where}: unknown field(s) {', '.join(extra)}; allowed fields are {', '.join(FIELDS)}"
        )
    for field in FIELDS:
        if not isinstance(obj[field], str) or not obj[field].strip():
            raise PromptSchemaError(f"{where}: `{field}` must be a non-empty string, got {obj[field]!r}")
    if len(obj["text"]) > MAX_PROMPT_CHARS:
        raise PromptSchemaError(
            f"{where}: `text` is {len(obj['text']):,} characters, more than {MAX_PROMPT_CHARS:,}; an instruction "
            "longer than that is not a prompt of this study (shorten it)"
        )
    if obj["label"] not in LABELS:
        raise PromptSchemaError(f"{where}: `label` is {obj['label']!r}; use one of {', '.join(LABELS)}")
    if obj["split"] not in SPLITS:
        raise PromptSchemaError(f"{where}: `split` is {obj['split']!r}; use one of {', '.join(SPLITS)}")
    return PromptRecord(**obj)


def read_jsonl(path: str | Path) -> list[PromptRecord]:
    """Read and validate a prompt JSONL file; ids must be unique within it."""
    path = Path(path)
    if not path.exists():
        raise PromptSchemaError(f"{path}: no such prompt file")
    records: list[PromptRecord] = []
    seen: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        bad_line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise PromptSchemaError(f"{path}:{bad_line}: not UTF-8 text; save the file as UTF-8") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSchemaError(
                f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object"
            ) from None
        record = validate_record(obj, where)
        if record.id in seen:
            raise PromptSchemaError(
                f"{where}: duplicate id {record.id!r} (first on line {seen[record.id]}); ids must be unique"
            )
        seen[record.id] = lineno
        records.append(record)
    if not records:
        raise PromptSchemaError(f"{path}: the file holds no prompt records")
    return records


def write_records(path: str | Path, records: Iterable[PromptRecord]) -> None:
    write_jsonl(path, [r.to_dict() for r in records])


def select(
    records: Sequence[PromptRecord],
    *,
    label: str | None = None,
    split: str | None = None,
    domain: str | None = None,
    source: str | None = None,
) -> list[PromptRecord]:
    """The records matching every given field."""
    return [
        r
        for r in records
        if (label is None or r.label == label)
        and (split is None or r.split == split)
        and (domain is None or r.domain == domain)
        and (source is None or r.source == source)
    ]


def assign_split(key: str, val_fraction: float, test_fraction: float, seed: int = 0) -> Split:
    """A deterministic split from a hash of ``key``: stable when other records are added or removed."""
    u = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


# --- public sets ------------------------------------------------------------------------------------
# Each loader maps a row (a dict of the set's own columns) to (text, label, domain). Hub ids are the
# commonly used mirrors; any local CSV/JSON/JSONL file with the same columns works too.


@dataclass(frozen=True)
class PublicSet:
    name: str
    hub_id: str
    text_column: str
    to_label: Callable[[dict[str, Any]], Label]
    to_domain: Callable[[dict[str, Any]], str]
    hub_split: str = "train"


def _column(name: str, default: str = "unspecified") -> Callable[[dict[str, Any]], str]:
    return lambda row: str(row.get(name) or default).strip().lower().replace(" ", "_")


def _alpaca_text(row: dict[str, Any]) -> str:
    extra = str(row.get("input") or "").strip()
    return f"{row['instruction']}\n\n{extra}" if extra else str(row["instruction"])


PUBLIC_SETS: dict[str, PublicSet] = {
    s.name: s
    for s in [
        PublicSet("advbench", "walledai/AdvBench", "prompt", lambda r: "harmful", _column("category")),
        PublicSet("harmbench", "walledai/HarmBench", "prompt", lambda r: "harmful", _column("category")),
        PublicSet(
            "jailbreakbench",
            "JailbreakBench/JBB-Behaviors",
            "Goal",
            lambda r: "harmful",
            _column("Category"),
            hub_split="harmful",
        ),
        PublicSet(
            "strongreject", "walledai/StrongREJECT", "prompt", lambda r: "harmful", _column("category")
        ),
        PublicSet("alpaca", "tatsu-lab/alpaca", "instruction", lambda r: "harmless", lambda r: "benign"),
        PublicSet(
            "xstest",
            "walledai/XSTest",
            "prompt",
            lambda r: "harmful" if str(r.get("label", "")).lower() == "unsafe" else "harmless",
            _column("type"),
            hub_split="test",
        ),
    ]
}
# Columns the original (non-mirror) releases use, accepted for local files.
_TEXT_ALIASES = {
    "advbench": ["goal", "prompt"],
    "harmbench": ["Behavior", "prompt"],
    "jailbreakbench": ["Goal", "goal", "prompt"],
    "strongreject": ["forbidden_prompt", "prompt"],
    "alpaca": ["instruction"],
    "xstest": ["prompt"],
}
_DOMAIN_ALIASES = {"harmbench": ["SemanticCategory", "category"], "strongreject": ["category"]}


def _read_local_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a local copy of a public set; a file that cannot be parsed is one line naming it."""
    try:
        rows = _parse_local_rows(path)
    except UnicodeDecodeError:
        raise DatasetLoadError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except (json.JSONDecodeError, csv.Error, ValueError, OSError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetLoadError(
            f"{path}: cannot be read as {path.suffix.lstrip('.')} ({detail}); check the file, or download it again"
        ) from None
    if not all(isinstance(row, dict) for row in rows):
        raise DatasetLoadError(f"{path}: every row must be an object with named columns; check the file")
    return rows


def _parse_local_rows(path: Path) -> list[Any]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):  # {"data": [...]}-style dumps
            data = next((v for v in data.values() if isinstance(v, list)), [])
        return list(data)
    if path.suffix == ".parquet":
        import pandas as pd

        return list(pd.read_parquet(path).to_dict("records"))
    raise DatasetLoadError(
        f"{path}: unsupported file type {path.suffix!r}; use .csv, .json, .jsonl or .parquet"
    )


def _read_hub_rows(dataset: PublicSet, hub_id: str, allow_hub: bool) -> list[dict[str, Any]]:
    if not allow_hub:
        raise DatasetLoadError(
            f"{dataset.name}: `{hub_id}` is a Hugging Face dataset and the hub is off. Download it where you "
            "have access and pass the local file (`<set>:path/to/file.csv`), or set `run.allow_hub: true`"
        )
    try:
        import datasets

        return list(datasets.load_dataset(hub_id, split=dataset.hub_split))
    except Exception as exc:  # datasets raises many types for network and auth failures
        raise DatasetLoadError(
            f"{dataset.name}: could not load `{hub_id}` from the hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); download it and pass a local file"
        ) from None


def load_public_set(
    name: str,
    location: str | None = None,
    *,
    allow_hub: bool = False,
    val_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> list[PromptRecord]:
    """Load a public prompt set from a local file, or its hub id, into prompt records.

    Splits are assigned by a stable hash of each prompt's text.
    """
    if name not in PUBLIC_SETS:
        raise DatasetLoadError(
            f"unknown prompt set {name!r}; known sets are {', '.join(sorted(PUBLIC_SETS))}"
        )
    dataset = PUBLIC_SETS[name]
    location = location or dataset.hub_id
    path = Path(location)
    rows = _read_local_rows(path) if path.exists() else _read_hub_rows(dataset, location, allow_hub)
    if not rows:
        raise DatasetLoadError(f"{location}: no rows")
    text_column = next((c for c in _TEXT_ALIASES[name] if c in rows[0]), None)
    if text_column is None:
        raise DatasetLoadError(
            f"{location}: no prompt column for {name}; expected one of {', '.join(_TEXT_ALIASES[name])}, "
            f"found {', '.join(map(str, rows[0]))}"
        )
    domain_of = dataset.to_domain
    for alias in _DOMAIN_ALIASES.get(name, []):
        if alias in rows[0]:
            domain_of = _column(alias)
            break
    records = []
    for i, row in enumerate(rows):
        text = _alpaca_text(row) if name == "alpaca" else str(row[text_column]).strip()
        records.append(
            PromptRecord(
                id=f"{name}-{i:05d}",
                text=text,
                label=dataset.to_label(row),
                domain=domain_of(row),
                split=assign_split(text, val_fraction, test_fraction, seed),
                source=name,
            )
        )
    return records


def load_prompt_source(spec: str, *, allow_hub: bool = False, seed: int = 0) -> list[PromptRecord]:
    """Resolve a model's ``prompts`` entry: a JSONL path, or ``<set>:<file-or-hub-id>`` / ``<set>``.

    Several sources can be joined with ``+`` (``advbench:adv.csv+alpaca:alpaca.json``).
    """
    records: list[PromptRecord] = []
    for part in spec.split("+"):
        part = part.strip()
        name, _, location = part.partition(":")
        if name in PUBLIC_SETS:
            records.extend(load_public_set(name, location or None, allow_hub=allow_hub, seed=seed))
        else:
            records.extend(read_jsonl(part))
    return records
