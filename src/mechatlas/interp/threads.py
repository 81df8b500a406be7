"""How many CPU threads torch may use inside a block of work.

The geometry estimators work on small float64 matrices (``d_model`` up to a few thousand), where a
second thread gains little and an OpenMP team on busy, shared cores can stall for tens of seconds;
they run under ``one_thread``. Stages that run a model may ask for more with ``torch_threads``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Let torch use ``threads`` CPU threads inside the block (``None``: leave torch's choice alone)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def one_thread() -> contextlib.AbstractContextManager[None]:
    """Run torch on one thread inside the block. The matrices here are small (``d_model`` ≲ a few
    thousand), where a second thread gains little, and an OpenMP team on busy, shared cores can stall
    for tens of seconds waiting for a core."""
    return torch_threads(1)


def single_threaded(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate ``function`` to run inside ``one_thread()``."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_thread():
            return function(*args, **kwargs)

    return wrapper


def parallel_map(function: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[function(item) for item in items]`` on a pool of ``workers`` threads (default: every core).

    For independent resamples of the geometry estimators: torch releases the GIL inside its kernels,
    so single-threaded linear algebra on several matrices at once uses every core, and the result does
    not depend on scheduling (each item's answer is a function of that item alone; order is kept).
    """
    workers = min(len(items), workers or os.cpu_count() or 1)
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))
