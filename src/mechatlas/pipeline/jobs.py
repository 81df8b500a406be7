"""The frame of every Snakemake job script: its log, its params, and one readable line when it fails.

A job script in ``workflow/scripts/`` is three lines of wiring inside ``with job(snakemake) as params:``.
The job's stderr goes to its log file. When the job fails, the log keeps the traceback and the error,
and the error's one line is also written beside the log (``<log>.error``), where ``mechatlas.pipeline.runner``
finds it and prints it at the terminal: under ``make run`` and ``dvc repro`` a person reads
``error: data/prompts/handwritten.jsonl:3: ...``, not sixty lines of Snakemake output.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mechatlas.config import Params, validate_params
from mechatlas.errors import MechatlasError
from mechatlas.numerics import pin_cpu_kernels

#: The suffix of the file that holds a failed job's one-line message, next to its log.
ERROR_SUFFIX = ".error"


def error_file(log: Path) -> Path:
    return log.with_name(log.name + ERROR_SUFFIX)


def failure_line(error: BaseException, log: Path) -> str:
    """What a person reads: the message of an error they can fix, or where to find a bug's traceback."""
    if isinstance(error, MechatlasError):
        return str(error)
    detail = str(error).splitlines()[0] if str(error) else ""
    return (
        f"internal error {type(error).__name__}{': ' + detail if detail else ''} "
        f"(a bug, not your input: the traceback is in {log.as_posix()}; please report it)"
    )


@contextlib.contextmanager
def job(smk: Any) -> Iterator[Params]:
    """Run a job body with its stderr in ``smk.log[0]``, the CPU kernels pinned (``mechatlas.numerics``)
    and the validated params; one line on failure."""
    log = Path(smk.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    error_file(log).unlink(missing_ok=True)
    with log.open("w", buffering=1) as stream:
        sys.stderr = stream
        try:
            pin_cpu_kernels()  # before the job body imports torch
            yield validate_params(smk.config)
        except (Exception, KeyboardInterrupt) as error:
            traceback.print_exc(file=stream)
            line = failure_line(error, log)
            print(f"error: {line}", file=stream)
            error_file(log).write_text(line + "\n", encoding="utf-8")
            stream.flush()
            sys.stderr = sys.__stderr__
            sys.exit(1)
        sys.stderr = sys.__stderr__
