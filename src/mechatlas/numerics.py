"""The same kernels on any x86-64 CPU: every pipeline job and ``mechatlas`` command pins them.

PyTorch, MKL and oneDNN choose their kernels by the CPU they run on (its instructions, and for MKL its
vendor and model), and kernels that add in different orders give different bytes. Measured: with the
CPU's own choice, one AVX-512 machine trained an organism whose checkpoint differed from the one
trained with AVX2 kernels, and every result after it differed too. ``pin_cpu_kernels`` therefore sets,
before torch is imported, ATen's vectorised operations and oneDNN's ceiling to AVX2 and MKL's
conditional numerical reproducibility branch to AVX2, which MKL documents as giving the same results on
every Intel CPU with AVX2 at the same thread count.

On a CPU that is not Intel's, MKL ignores ``MKL_CBWR=AVX2`` and runs its ``AUTO`` branch, which it
chooses per CPU model: two AMD EPYC machines trained different organisms under the same pins. MKL's
``COMPATIBLE`` branch is the one it documents for the same results on any vendor's CPU, but it trained
the organism more than 2.5 times as slowly (over 8.5 minutes against 3.4), so it is a choice, not the
default: ``MKL_CBWR=COMPATIBLE make run``. A value already in the environment wins, which is also how
to trade the reproduction for speed (``ATEN_CPU_CAPABILITY=avx512 MKL_CBWR=AUTO
ONEDNN_MAX_CPU_ISA=ALL``; ATen's ``default`` is its scalar kernels). ``numerics_record`` writes the
settings, and the MKL branch actually in force, into each result's provenance.

What the pins do not fix: a different number of threads can change the order of a parallel sum (the
organism's training pins its own, ``organism.training.threads``); a different torch or MKL version; an
ARM CPU or a GPU, which have kernels of their own.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import MutableMapping
from typing import Any

from mechatlas.errors import MechatlasError

#: The environment that pins each library's kernels: ATen's vectorised operations, MKL's conditional
#: numerical reproducibility branch (honoured on Intel CPUs) and oneDNN's instruction ceiling, at AVX2.
PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_kernels(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``PINNED_KERNELS`` where the environment does not set them already; before torch is imported.

    Each library reads its variable once, when it first runs a kernel, so after torch is imported a
    change here might not take effect, and the process refuses rather than compute on unknown kernels.
    """
    missing = {name: value for name, value in PINNED_KERNELS.items() if name not in environ}
    if missing and "torch" in sys.modules:
        raise MechatlasError(
            "torch was imported before the CPU kernels were pinned; call "
            "mechatlas.numerics.pin_cpu_kernels() first (or set "
            + ", ".join(missing)
            + " in the environment)"
        )
    environ.update(missing)


def mkl_branch() -> str | None:
    """The conditional numerical reproducibility branch MKL runs in this process (``COMPATIBLE``, ``AUTO``,
    ``OFF``, ...), read from MKL's own verbose line for one small matrix product; None without MKL."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    a = torch.ones(2, 2)
    sys.stdout.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(1)  # MKL writes its verbose lines to the process's standard output
        try:
            os.dup2(sink.fileno(), 1)
            with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                torch.mm(a, a)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        found = re.search(r"CNR:(\S+)", sink.read().decode(errors="replace"))
    return found.group(1) if found else None


def numerics_record() -> dict[str, Any]:
    """The kernel settings in force: the three variables, and where this process uses torch, its
    version, chosen CPU capability, MKL branch and thread count."""
    record: dict[str, Any] = {"environment": {name: os.environ.get(name) for name in PINNED_KERNELS}}
    torch = sys.modules.get("torch")
    if torch is not None:
        record |= {
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_branch": mkl_branch(),
            "threads": torch.get_num_threads(),
        }
    return record
