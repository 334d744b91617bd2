"""Worker processes that decode images: a pool whose dead worker raises one DataError, never hangs.

Processes start from a forkserver (never fork: the parent runs JAX's threads), which imports only
this module's dependencies; each task's function and arguments are pickled to the worker.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from gan_jax.data.errors import DataError


def resolve_workers(workers: int) -> int:
    """`workers` processes, or with 0 one per core this process may run on."""
    if workers < 0:
        raise DataError(f"data.workers must be >= 0 (0: one per core), got {workers}")
    return workers or len(os.sched_getaffinity(0))


def process_pool(workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of `workers` forkserver processes, each running `initializer(*initargs)` first."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return concurrent.futures.ProcessPoolExecutor(workers, context, _start_worker,
                                                  (initializer, *initargs))


def _start_worker(initializer: Callable[..., None] | None, *initargs: Any) -> None:
    """Ignore SIGINT and SIGTERM (Ctrl-C and a scheduler signal the whole process group: the
    parent stops gracefully and shuts the pool down), then run `initializer(*initargs)`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def worker_died(what: str) -> DataError:
    """The one-line error for a worker process that died (a crash, the OOM killer) during `what`."""
    return DataError(f"a data worker process died while {what} (a crash in a decoder, or out of "
                     "memory); rerun with --config.data.workers=1 to decode in the main process "
                     "and see the error")


def map_in_processes(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, what: str,
                     chunksize: int = 1) -> Iterator[Any]:
    """fn(item) for each item, in order, computed in `workers` processes (1: in this process);
    a worker that dies raises `worker_died(what)`."""
    if workers == 1:
        yield from map(fn, items)
        return
    with process_pool(workers) as pool:
        try:
            yield from pool.map(fn, items, chunksize=chunksize)
        except BrokenProcessPool:
            raise worker_died(what) from None
