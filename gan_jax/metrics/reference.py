"""Features of a data set's real images, computed once per (data set, resolution, extractor) and
cached on disk.

Cache: $GAN_JAX_CACHE (default ~/.cache/gan_jax) / reference / <key>.npz, where <key> hashes the
data set spec, resolution, channels, the examples used, the extractor's name and fingerprint (a
hash of its weights) and this file's format version. The file also stores a sha256 of the uint8
images the features came from, checked on every use: if the data changed (a folder gained files, a
TFDS version changed its images), the features are recomputed, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

CACHE_ENV = "GAN_JAX_CACHE"
FORMAT_VERSION = 1
SUBSET_SEED = 0  # which examples a num_real < size subset takes; fixed so every run compares alike
CHUNK = 500  # real images read and featurised at a time

Extractor = Callable[[np.ndarray], dict[str, np.ndarray]]


def cache_dir() -> Path:
    """$GAN_JAX_CACHE, else ~/.cache/gan_jax."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gan_jax")


def example_indices(num_examples: int, num_real: int) -> np.ndarray:
    """All examples in order (num_real 0 or >= size), else a fixed random subset of num_real."""
    if num_real <= 0 or num_real >= num_examples:
        return np.arange(num_examples)
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(num_examples)[:num_real])


def _chunks(source, indices: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), CHUNK):
        yield source.get(indices[start:start + CHUNK])["image"]


def cache_key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def reference_features(source, data_spec: str, extractor, num_real: int = 0,
                       log: Callable[[str], None] = lambda message: None) -> np.ndarray:
    """float32 (N, D) features of the real images of `source` (the cached copy when valid).

    `data_spec` is the data set name as configured ('digits', 'tfds:cifar10', 'folder:PATH').
    """
    indices = example_indices(source.num_examples, num_real)
    spec = {"data": data_spec, "image_shape": list(source.image_shape),
            "num_examples": int(source.num_examples), "num_real": len(indices),
            "extractor": extractor.name, "fingerprint": extractor.fingerprint,
            "format": FORMAT_VERSION}
    path = cache_dir() / "reference" / f"{cache_key(spec)}.npz"
    images_sha = hashlib.sha256()
    for chunk in _chunks(source, indices):
        images_sha.update(np.ascontiguousarray(chunk).tobytes())
    images_sha = images_sha.hexdigest()
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if (json.loads(str(cached["spec"])) == spec
                    and str(cached["images_sha256"]) == images_sha):
                return cached["features"]
        log(f"reference features in {path} are stale (the images changed); recomputing")
    log(f"computing {extractor.name} features of {len(indices)} real images of {data_spec} "
        f"(cached in {path})")
    features = np.concatenate([extractor(chunk)["features"] for chunk in _chunks(source, indices)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, features=features, spec=json.dumps(spec, sort_keys=True),
                 images_sha256=images_sha)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    return features
