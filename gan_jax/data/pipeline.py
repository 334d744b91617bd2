"""Deterministic, resumable batching: each step's example indices are a pure function of (seed, step)."""

from __future__ import annotations

import collections
import concurrent.futures
import functools

import numpy as np

from gan_jax.data.sources import ImageSource


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


class BatchIterator:
    """Yields (step, batch) from start_step on, arrays (n_critic, B_local, ...), prefetched in a thread."""

    def __init__(self, source: ImageSource, seed: int, start_step: int, batch_size: int, n_critic: int = 1,
                 process_index: int = 0, process_count: int = 1, prefetch: int = 2):
        batch_indices(seed, start_step, source.num_examples, batch_size, n_critic, process_index,
                      process_count)  # validate arguments eagerly
        self._source = source
        self._index_args = (source.num_examples, batch_size, n_critic, process_index, process_count)
        self._seed = seed
        self._next_step = start_step  # next step to hand out
        self._prefetch = max(0, prefetch)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gan_jax_data")
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._closed = False

    def load(self, step: int) -> dict[str, np.ndarray]:
        """The batch for `step`, computed synchronously."""
        indices = batch_indices(self._seed, step, *self._index_args)
        batch = self._source.get(indices.reshape(-1))
        return {key: value.reshape(indices.shape + value.shape[1:]) for key, value in batch.items()}

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> tuple[int, dict[str, np.ndarray]]:
        if self._closed:
            raise StopIteration
        while len(self._pending) < self._prefetch + 1:
            self._pending.append(self._executor.submit(self.load, self._next_step + len(self._pending)))
        batch = self._pending.popleft().result()
        step, self._next_step = self._next_step, self._next_step + 1
        return step, batch

    def close(self) -> None:
        """Stop prefetching and release the worker thread."""
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)

    def __enter__(self) -> BatchIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
