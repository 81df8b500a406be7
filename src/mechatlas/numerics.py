"""The same kernels on any x86-64 CPU: every pipeline job and ``mechatlas`` command computes with AVX2.

PyTorch, MKL and oneDNN choose their kernels by the instructions the CPU offers (AVX2, AVX-512, AMX),
and kernels of different vector widths add in different orders. Measured on one AVX-512 machine: the
same seed and code trained an organism whose checkpoint differed in its bytes with AVX-512 kernels
from the one trained with AVX2 kernels, and every result after it differed too. ``pin_cpu_kernels``
caps all three libraries at AVX2, which every x86-64 server CPU since 2013 has, before torch is
imported: the CPU then no longer chooses. (MKL documents its conditional numerical reproducibility
mode, ``MKL_CBWR``, as giving the same results on every CPU with the named instructions at the same
thread count.) A value already in the environment wins, so a user can trade this for speed
(``ATEN_CPU_CAPABILITY=default``, the other two unset); ``numerics_record`` writes what was used into
each result's provenance.

What the cap does not fix: a different number of threads can change the order of a parallel sum
(the organism's training pins its own, ``organism.training.threads``); a different torch or MKL
version; an ARM CPU or a GPU, which have kernels of their own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Any

from mechatlas.errors import MechatlasError

#: The environment that caps each library's kernels at AVX2: ATen's vectorised operations, MKL's
#: conditional numerical reproducibility mode, and oneDNN's instruction-set ceiling.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_kernels(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``AVX2_KERNELS`` where the environment does not set them already; before torch is imported.

    Each library reads its variable once, when it first runs a kernel, so after torch is imported a
    change here might not take effect, and the process refuses rather than compute on unknown kernels.
    """
    missing = {name: value for name, value in AVX2_KERNELS.items() if name not in environ}
    if missing and "torch" in sys.modules:
        raise MechatlasError(
            "torch was imported before the CPU kernels were pinned; call "
            "mechatlas.numerics.pin_cpu_kernels() first (or set "
            + ", ".join(missing)
            + " in the environment)"
        )
    environ.update(missing)


def numerics_record() -> dict[str, Any]:
    """The kernel settings in force: the three variables, and torch's version, chosen CPU capability and
    thread count where this process uses torch."""
    record: dict[str, Any] = {"environment": {name: os.environ.get(name) for name in AVX2_KERNELS}}
    torch = sys.modules.get("torch")
    if torch is not None:
        record |= {
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
        }
    return record
