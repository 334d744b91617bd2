"""Data layer: image sources, IDX reader and deterministic, resumable batching."""

from gan_jax.data.idx import read_idx
from gan_jax.data.pipeline import BatchIterator, batch_indices
from gan_jax.data.sources import DataError, ImageSource, make_source

__all__ = ["BatchIterator", "DataError", "ImageSource", "batch_indices", "make_source", "read_idx"]
