"""Deterministic, resumable batching: each step's example indices are a pure function of (seed, step).

An image source (or a paired one) is one index stream; unpaired image-to-image sources are two,
domain A and domain B, each with its own seed (`domain_seed`), so each domain has its own
permutation and cycles its own epochs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from gan_jax.data.image_pairs import PairSource, UnpairedSources
from gan_jax.data.sources import ImageSource
from gan_jax.data.workers import process_pool, resolve_workers, worker_died

Source = ImageSource | PairSource | UnpairedSources


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """Read-only permutation of range(num_examples) for one epoch, a pure function of (seed, epoch)."""
    permutation = np.random.default_rng([seed, epoch]).permutation(num_examples)
    permutation.flags.writeable = False
    return permutation


def batch_indices(seed: int, step: int, num_examples: int, batch_size: int, n_critic: int = 1,
                  process_index: int = 0, process_count: int = 1) -> np.ndarray:
    """Example indices for `step`: int64 (n_critic, batch_size // process_count), this process's columns."""
    if batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} is not divisible by process_count {process_count}; "
                         f"use a multiple of {process_count}")
    if min(num_examples, batch_size, n_critic) < 1 or step < 0 or seed < 0:
        raise ValueError(f"need num_examples, batch_size, n_critic >= 1 and step, seed >= 0; got "
                         f"{num_examples=}, {batch_size=}, {n_critic=}, {step=}, {seed=}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is outside [0, {process_count})")
    local = batch_size // process_count
    start = step * n_critic * batch_size + process_index * local
    rows = start + batch_size * np.arange(n_critic, dtype=np.int64)[:, None]
    positions = rows + np.arange(local, dtype=np.int64)  # stream positions, shape (n_critic, local)
    epochs, offsets = np.divmod(positions, num_examples)
    indices = np.empty_like(positions)
    for epoch in np.unique(epochs):
        in_epoch = epochs == epoch
        indices[in_epoch] = epoch_permutation(seed, int(epoch), num_examples)[offsets[in_epoch]]
    return indices


def domain_seed(seed: int, domain: int) -> int:
    """Index-stream seed of unpaired domain `domain` (0: A, 1: B) in a run with `seed`:
    seed + (domain + 1) * 2**32, unlike any run seed (< 2**32) and unlike each other."""
    return seed + (domain + 1) * 2**32


def index_streams(source: Source, seed: int) -> tuple[tuple[ImageSource | PairSource, int, str | None], ...]:
    """(source, seed, batch key) of each index stream: one for an image or paired source (its
    batches keep their keys: key None), one per domain of unpaired sources (its 'image' becomes
    'a' or 'b'; labels are dropped)."""
    if isinstance(source, UnpairedSources):
        return ((source.a, domain_seed(seed, 0), "a"), (source.b, domain_seed(seed, 1), "b"))
    return ((source, seed, None),)


def _renamed(batch: dict[str, np.ndarray], key: str | None) -> dict[str, np.ndarray]:
    return batch if key is None else {key: batch["image"]}


def example_batch(source: Source) -> dict[str, np.ndarray]:
    """One example of every key of `source`'s batches, (1, ...) each: shapes and dtypes to compile for."""
    batch = {}
    for stream, _, key in index_streams(source, 0):
        batch.update(_renamed(stream.get(np.arange(1)), key))
    return batch


@dataclasses.dataclass(frozen=True)
class StepLoader:
    """The batch of a step, arrays (n_critic, B_local, ...): a pure function of the step."""

    streams: tuple[tuple[ImageSource | PairSource, int, str | None], ...]
    index_args: tuple[int, int, int, int]  # batch_size, n_critic, process_index, process_count

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        batch = {}
        for stream, seed, key in self.streams:
            indices = batch_indices(seed, step, stream.num_examples, *self.index_args)
            got = _renamed(stream.get(indices.reshape(-1)), key)
            batch.update({k: v.reshape(indices.shape + v.shape[1:]) for k, v in got.items()})
        return batch


_worker_loader: StepLoader | None = None  # a worker process's loader, set by _install


def _install(loader: StepLoader) -> None:
    global _worker_loader
    _worker_loader = loader


def _load_in_worker(step: int) -> dict[str, np.ndarray]:
    return _worker_loader(step)


class BatchIterator:
    """Yields (step, batch) from start_step on, arrays (n_critic, B_local, ...), prefetched.

    Sources that decode in `get` (tfds:) load whole batches in `workers` processes (0: one per
    core), up to max(prefetch, workers) + 1 steps ahead, handed out in step order, so the batches
    are those of one thread; in-memory sources load in one thread. A worker process that dies
    raises one DataError."""

    def __init__(self, source: Source, seed: int, start_step: int, batch_size: int, n_critic: int = 1,
                 process_index: int = 0, process_count: int = 1, prefetch: int = 2, workers: int = 1):
        streams = index_streams(source, seed)
        self._loader = StepLoader(streams, (batch_size, n_critic, process_index, process_count))
        for stream, stream_seed, _ in streams:  # validate arguments eagerly
            batch_indices(stream_seed, start_step, stream.num_examples, *self._loader.index_args)
        self._next_step = start_step  # next step to hand out
        workers = resolve_workers(workers) if any(s.decodes for s, _, _ in streams) else 1
        self._ahead = max(0, prefetch, workers - 1) + 1
        if workers > 1:
            self._executor = process_pool(workers, _install, (self._loader,))
            self._submit = functools.partial(self._executor.submit, _load_in_worker)
        else:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                   thread_name_prefix="gan_jax_data")
            self._submit = functools.partial(self._executor.submit, self._loader)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._closed = False

    def load(self, step: int) -> dict[str, np.ndarray]:
        """The batch for `step`, computed synchronously in this process."""
        return self._loader(step)

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> tuple[int, dict[str, np.ndarray]]:
        if self._closed:
            raise StopIteration
        while len(self._pending) < self._ahead:
            self._pending.append(self._submit(self._next_step + len(self._pending)))
        try:
            batch = self._pending.popleft().result()
        except BrokenProcessPool:
            raise worker_died(f"loading batches (at step {self._next_step})") from None
        step, self._next_step = self._next_step, self._next_step + 1
        return step, batch

    def close(self) -> None:
        """Stop prefetching and release the worker thread or processes."""
        self._closed = True
        self._pending.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
