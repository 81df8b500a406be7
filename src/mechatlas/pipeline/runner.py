"""The Snakemake runner that every DVC stage calls: ``python -m mechatlas.pipeline.runner <snakemake args>``.

It wraps one Snakemake invocation so that a run is safe to interrupt and its failures are readable:

- **One run at a time.** It holds an exclusive lock on ``.snakemake/mechatlas-run.lock`` for the whole
  invocation; a second, concurrent run stops at once with one line naming the first one's process.
- **Recovery after ``kill -9``.** Holding that lock proves that no other run is alive, so Snakemake's
  own locks, half-written temporary files (``mechatlas.io.TEMP_MARK``) and a stage backup left by a
  killed run are stale: they are removed, or restored, before Snakemake starts. No ``--unlock`` needed.
- **Inputs checked first.** ``params.yaml`` is validated before Snakemake parses the workflow.
- **Nothing lost.** The DVC stage's outputs (``DVC_STAGE``, set by DVC) are copied aside before the
  run and put back if it fails, so a failed rerun leaves the previous results exactly as they were.
  DVC itself leaves them in place because every output in ``dvc.yaml`` is ``persist: true``.
- **One line.** Snakemake's output goes to ``logs/snakemake/<stage>.log``; only progress lines reach
  the terminal. A failure prints the failed job's own message (``mechatlas.pipeline.jobs``) and the log.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import yaml

from mechatlas.config import load_params
from mechatlas.errors import MechatlasError
from mechatlas.io import TEMP_MARK
from mechatlas.pipeline.jobs import ERROR_SUFFIX

STATE = Path(".snakemake")
RUN_LOCK = STATE / "mechatlas-run.lock"
BACKUP = STATE / "mechatlas-backup"
LOGS = Path("logs")
#: Where the study writes; a killed run's temporary files can only be here.
OUTPUT_ROOTS = (Path("data"), Path("reports"), Path("site"))
_PROGRESS = re.compile(r"^\d+ of \d+ steps \(")


class RunError(MechatlasError):
    """A run that cannot start or did not finish; the message says why and what to do."""


@contextmanager
def run_lock(path: Path = RUN_LOCK) -> Iterator[None]:
    """Hold the checkout's run lock; the operating system releases it when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunError(
                f"another run is using this checkout (process {holder}); wait for it to finish or stop it, "
                "then run `make run` again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def recover(root: Path = Path(".")) -> list[str]:
    """Undo what a killed run left behind; call only while holding ``run_lock``. Returns what was done."""
    done = []
    locks = sorted((root / STATE / "locks").glob("*"))
    if locks:
        for lock in locks:
            lock.unlink()
        done.append(f"removed {len(locks)} stale Snakemake lock(s) left by an interrupted run")
    for base in OUTPUT_ROOTS:
        for path in sorted((root / base).rglob(f"*{TEMP_MARK}*")) if (root / base).exists() else []:
            if not path.exists():
                continue  # inside a temporary folder already removed
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            done.append(f"removed the half-written {path.relative_to(root).as_posix()}")
    backup = root / BACKUP
    if backup.exists():
        restored = _restore(backup, root, only_missing=True)
        shutil.rmtree(backup)
        done += [f"restored {name} from before the interrupted run" for name in restored]
    return done


def stage_outputs(stage: str, dvc_file: Path = Path("dvc.yaml")) -> list[Path]:
    """The outputs of DVC stage ``stage`` (``name`` or ``name@key`` for a ``foreach`` stage)."""
    name, _, key = stage.partition("@")
    if not dvc_file.exists():
        return []
    stages = yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("stages", {})
    if name not in stages:
        return []
    body = stages[name].get("do", stages[name])
    outs = []
    for out in [*body.get("outs", []), *body.get("metrics", []), *body.get("plots", [])]:
        path = next(iter(out)) if isinstance(out, dict) else str(out)
        outs.append(Path(path.replace("${key}", key)))
    return outs


def _backup(outputs: Sequence[Path], root: Path) -> None:
    """Copy the existing outputs aside, with an index of what was copied (``.outputs``)."""
    kept = []
    for out in outputs:
        source, copy = root / out, root / BACKUP / out
        if not source.exists():
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, symlinks=True)
        else:
            shutil.copy2(source, copy)
        kept.append(out.as_posix())
    (root / BACKUP).mkdir(parents=True, exist_ok=True)
    (root / BACKUP / ".outputs").write_text("".join(f"{name}\n" for name in kept), encoding="utf-8")


def _restore(backup: Path, root: Path, *, only_missing: bool) -> list[str]:
    """Put the backed-up outputs back (only those now missing, if ``only_missing``); returns their paths."""
    index = backup / ".outputs"
    restored = []
    for name in index.read_text(encoding="utf-8").split() if index.exists() else []:
        copy, target = backup / name, root / name
        if not copy.exists() or (only_missing and target.exists()):
            continue
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(copy, target)
        restored.append(name)
    return restored


def _job_errors(since: float) -> list[str]:
    """The one-line messages of the jobs that failed in this run."""
    if not LOGS.exists():
        return []
    found = [p for p in LOGS.rglob(f"*{ERROR_SUFFIX}") if p.stat().st_mtime >= since]
    lines = []
    for path in sorted(found):
        log = path.with_name(path.name.removesuffix(ERROR_SUFFIX))
        message = path.read_text(encoding="utf-8").strip()
        lines.append(f"{message} (log: {log.as_posix()})")
    return lines


def _snakemake_error(log: Path) -> str:
    """The first line of Snakemake's own complaint, for failures outside any job (syntax, missing input)."""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    for index, line in enumerate(text):
        if re.match(r"^(\w+Error|MissingInputException|Error in rule|Exception)", line.strip()):
            detail = " ".join(part.strip() for part in text[index : index + 3] if part.strip())
            return detail[:400]
    return "Snakemake stopped without a message"


def _stream(process: subprocess.Popen[str], log: IO[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line)
        if _PROGRESS.match(line.strip()):
            print(f"  {line.strip()}", flush=True)


def run(args: Sequence[str], root: Path = Path(".")) -> int:
    """Run Snakemake with ``args`` under the run lock; returns its exit status, prints one line on failure."""
    stage = os.environ.get("DVC_STAGE", "")
    with run_lock(root / RUN_LOCK):
        for line in recover(root):
            print(f"mechatlas: {line}", flush=True)
        load_params(
            root / "params.yaml"
        )  # a bad params file stops here, before Snakemake or DVC touch anything
        outputs = stage_outputs(stage, root / "dvc.yaml") if stage else []
        _backup(outputs, root)
        name = re.sub(
            r"[^\w@.-]+", "_", stage or "_".join(a for a in args if not a.startswith("-"))[:80] or "run"
        )
        log_path = root / LOGS / "snakemake" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.time() - 1
        with log_path.open("w", buffering=1) as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "snakemake", *args],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            _stream(process, log)
            status = process.wait()
        if status == 0:
            shutil.rmtree(root / BACKUP, ignore_errors=True)
            return 0
        restored = _restore(root / BACKUP, root, only_missing=False)
        shutil.rmtree(root / BACKUP, ignore_errors=True)
        errors = _job_errors(started) or [f"{_snakemake_error(log_path)} (log: {log_path.as_posix()})"]
        kept = (
            f"; the previous {', '.join(restored)} {'is' if len(restored) == 1 else 'are'} kept"
            if restored
            else ""
        )
        for message in errors:
            print(f"error: {message}{kept}", file=sys.stderr, flush=True)
        return status


def main(argv: Sequence[str] | None = None) -> None:
    try:
        sys.exit(run(list(sys.argv[1:] if argv is None else argv)))
    except MechatlasError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
