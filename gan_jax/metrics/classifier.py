"""A small CNN classifier trained on a labelled data set, used offline as a feature extractor.

Scores in its space ("FID in classifier space", Inception-Score-like scores) need no download:
`train_classifier` trains it deterministically and writes WORKDIR/classifier.msgpack (the params,
`flax.serialization.to_bytes`, no pickle) and WORKDIR/classifier.json (what it was trained on, its
test accuracy, the params' sha256); `ClassifierExtractor.load(WORKDIR)` maps uint8 images to
{'features', 'logits'}. The command is `python -m gan_jax.features`.

Architecture 'cnn-v1', for any resolution >= 8 and 1 or 3 channels. It has no batch norm, so an
image's features depend on that image alone:
    Conv(w, 4, 2) -> ReLU -> Conv(2w, 4, 2) -> ReLU -> Conv(4w, 3, 1) -> ReLU -> global mean
    -> Dense(feature_dim) -> ReLU ("features") -> Dense(num_classes) ("logits").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import images
from gan_jax.data.pipeline import batch_indices
from gan_jax.data.sources import DataError, ImageSource, holdout_split, make_source
from gan_jax.models.layers import Conv

ARCHITECTURE = "cnn-v1"  # bump when Classifier changes: it is part of every fingerprint
WIDTH = 32
BATCH_SIZE = 64
LEARNING_RATE = 2e-3  # Adam, cosine-decayed to 0 over the run
DEFAULT_STEPS = 1000
EVAL_BATCH_SIZE = 256
MIN_RESOLUTION = 8
PARAMS_FILE = "classifier.msgpack"
META_FILE = "classifier.json"
COMMAND = "python -m gan_jax.features"
META_KEYS = ("dataset", "test_dataset", "resolution", "channels", "num_classes", "feature_dim",
             "width", "architecture", "seed", "steps", "batch_size", "learning_rate",
             "test_accuracy", "num_train", "num_test", "params_sha256")


class Classifier(nn.Module):
    """images (B, H, W, C) in [-1, 1] -> (features (B, feature_dim), logits (B, num_classes))."""

    num_classes: int
    feature_dim: int = 128
    width: int = WIDTH

    @nn.compact
    def __call__(self, x):
        pad = ((1, 1), (1, 1))
        x = nn.relu(Conv(self.width, (4, 4), (2, 2), pad)(x))
        x = nn.relu(Conv(2 * self.width, (4, 4), (2, 2), pad)(x))
        x = nn.relu(Conv(4 * self.width, (3, 3), (1, 1), pad)(x))
        features = nn.relu(nn.Dense(self.feature_dim)(x.mean(axis=(1, 2))))
        return features, nn.Dense(self.num_classes)(features)


# ---------------------------------------------------------------------------------------------
# Data: the train and test examples of one labelled data set.


def derived_test_spec(dataset: str) -> str | None:
    """The test split of `dataset` ('fashion_mnist' -> 'fashion_mnist:test', 'tfds:x[:train]' ->
    'tfds:x:test', 'digits:train' -> 'digits:test'), or None where it has none and a held-out part of it is the test set."""
    name, _, arg = dataset.partition(":")
    if name == "fashion_mnist" and arg in ("", "train"):
        return "fashion_mnist:test"
    if dataset == "digits:train":
        return "digits:test"
    tfds_name, _, split = arg.partition(":")
    if name == "tfds" and tfds_name and split in ("", "train"):
        return f"tfds:{tfds_name}:test"
    return None


def labelled_source(spec: str, resolution: int, channels: int,
                    data_dir: str | None = None) -> ImageSource:
    """`make_source(spec, ...)`; DataError if it has no class labels."""
    source = make_source(spec, resolution, channels, data_dir=data_dir)
    if source.num_classes is None:
        raise DataError(f"data set {spec!r} has no class labels; a classifier needs a labelled data "
                        "set such as 'digits', 'fashion_mnist' or 'tfds:mnist'")
    return source


def train_test_sources(dataset: str, test_dataset: str, resolution: int, channels: int,
                       data_dir: str | None = None):
    """(train source, train indices, test source, test indices, test set name) of `dataset`.

    `test_dataset` '' derives the test set (`derived_test_spec`, else a 20% hold-out), 'holdout'
    asks for the hold-out, anything else is a data set spec with the same classes.
    """
    if resolution < MIN_RESOLUTION:
        raise DataError(f"the classifier needs a resolution >= {MIN_RESOLUTION}, got {resolution}")
    train = labelled_source(dataset, resolution, channels, data_dir)
    test_spec = derived_test_spec(dataset) if test_dataset == "" else test_dataset
    if test_spec in (None, "holdout"):
        if train.num_examples < 2:
            raise DataError(f"data set {dataset!r} has {train.num_examples} example; a hold-out "
                            "test set needs at least 2")
        train_idx, test_idx = holdout_split(train.num_examples)
        return train, train_idx, train, test_idx, f"holdout:{dataset}"
    test = labelled_source(test_spec, resolution, channels, data_dir)
    if test.num_classes != train.num_classes:
        raise DataError(f"test data set {test_spec!r} has {test.num_classes} classes but {dataset!r} "
                        f"has {train.num_classes}; pass a matching --test_dataset")
    return train, np.arange(train.num_examples), test, np.arange(test.num_examples), test_spec


# ---------------------------------------------------------------------------------------------
# Training.


def init_params(model: Classifier, image_shape: tuple[int, int, int], seed: int) -> dict:
    """Fresh params of `model` for images of `image_shape`; a pure function of `seed`."""
    return jax.device_get(model.init(jax.random.key(seed), jnp.zeros((1, *image_shape)))["params"])


def make_optimizer(steps: int) -> optax.GradientTransformation:
    """Adam with the learning rate cosine-decayed from LEARNING_RATE to 0 over `steps`."""
    return optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps))


@functools.partial(jax.jit, static_argnames=("model", "steps"))
def train_step(params, opt_state, batch_images, labels, *, model: Classifier, steps: int):
    """One Adam step on uint8 images and int labels -> (params, opt_state, cross-entropy); pure."""

    def loss_fn(p):
        _, logits = model.apply({"params": p}, images.to_float(batch_images))
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = make_optimizer(steps).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def fit(model: Classifier, source: ImageSource, indices: np.ndarray, steps: int, seed: int) -> dict:
    """Params of `model` after `steps` steps on source[indices], batches drawn as the GAN loop draws
    them (a (seed, epoch)-seeded permutation per epoch); the same arguments give the same bits."""
    params = init_params(model, source.image_shape, seed)
    opt_state = make_optimizer(steps).init(params)
    batch_size = min(BATCH_SIZE, len(indices))
    for step in range(steps):
        batch = source.get(indices[batch_indices(seed, step, len(indices), batch_size)[0]])
        params, opt_state, _ = train_step(params, opt_state, batch["image"], batch["label"],
                                          model=model, steps=steps)
    return jax.device_get(params)


def accuracy(extractor: ClassifierExtractor, source: ImageSource, indices: np.ndarray) -> float:
    """Fraction of source[indices] whose largest logit is at the label."""
    correct = 0
    for start in range(0, len(indices), extractor.batch_size):
        batch = source.get(indices[start:start + extractor.batch_size])
        correct += int((extractor(batch["image"])["logits"].argmax(-1) == batch["label"]).sum())
    return correct / len(indices)


def train_classifier(dataset: str, resolution: int, channels: int, workdir: str | os.PathLike,
                     steps: int = DEFAULT_STEPS, seed: int = 0, feature_dim: int = 128,
                     data_dir: str | None = None, test_dataset: str = "") -> dict:
    """Train on `dataset`, measure the test accuracy, write WORKDIR/classifier.{msgpack,json};
    returns the json's dict. DataError for unusable data, ValueError for bad numbers."""
    if steps < 1 or feature_dim < 1 or seed < 0:
        raise ValueError(f"steps and feature_dim must be >= 1 and seed >= 0, got steps={steps}, "
                         f"feature_dim={feature_dim}, seed={seed}")
    train, train_idx, test, test_idx, test_name = train_test_sources(
        dataset, test_dataset, resolution, channels, data_dir)
    model = Classifier(train.num_classes, feature_dim, WIDTH)
    params = fit(model, train, train_idx, steps, seed)
    data = flax.serialization.to_bytes(params)
    meta = {"dataset": dataset, "test_dataset": test_name, "resolution": resolution,
            "channels": channels, "num_classes": int(train.num_classes), "feature_dim": feature_dim,
            "width": WIDTH, "architecture": ARCHITECTURE, "seed": seed, "steps": steps,
            "batch_size": min(BATCH_SIZE, len(train_idx)), "learning_rate": LEARNING_RATE,
            "test_accuracy": None, "num_train": len(train_idx), "num_test": len(test_idx),
            "params_sha256": hashlib.sha256(data).hexdigest()}
    meta["test_accuracy"] = accuracy(ClassifierExtractor(params, meta), test, test_idx)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_atomic(workdir / PARAMS_FILE, data)  # params first: the json names params that exist
    _write_atomic(workdir / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return meta


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The extractor.


@functools.partial(jax.jit, static_argnames=("model",))
def _features_and_logits(params, batch_images, *, model: Classifier):
    return model.apply({"params": params}, images.to_float(batch_images))


def _read_meta(path: Path) -> dict:
    """The checked contents of classifier.json; ValueError naming the problem otherwise."""
    fix = f"recreate it with {COMMAND}"
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not a JSON object; {fix}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; {fix}")
    if meta["architecture"] != ARCHITECTURE:
        raise ValueError(f"{path} describes architecture {meta['architecture']!r} but this code has "
                         f"{ARCHITECTURE!r}; {fix}")
    ints = ("resolution", "channels", "num_classes", "feature_dim", "width")
    if not all(isinstance(meta[k], int) and meta[k] >= 1 for k in ints) or meta["channels"] not in (1, 3):
        raise ValueError(f"{path} has invalid {', '.join(f'{k}={meta[k]!r}' for k in ints)}; {fix}")
    return meta


class ClassifierExtractor:
    """uint8 images (N, H, W, C) -> {'features': float32 (N, feature_dim), 'logits': float32
    (N, num_classes)}, computed in batches of `batch_size` with the last one zero-padded: one
    compiled shape serves every N, and an image's outputs do not depend on the other images."""

    def __init__(self, params: dict, meta: dict, batch_size: int = EVAL_BATCH_SIZE):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.params = jax.device_put(params)
        self.meta = meta
        self.batch_size = int(batch_size)
        self.resolution = int(meta["resolution"])
        self.channels = int(meta["channels"])
        self.image_shape = (self.resolution, self.resolution, self.channels)
        self.model = Classifier(int(meta["num_classes"]), int(meta["feature_dim"]), int(meta["width"]))
        self.num_features, self.num_logits = self.model.feature_dim, self.model.num_classes  # as Inception's
        self.name = f"classifier:{meta['dataset']}@{self.resolution}x{self.resolution}x{self.channels}"
        self.fingerprint = f"{ARCHITECTURE}-{meta['params_sha256'][:16]}"

    @classmethod
    def load(cls, workdir: str | os.PathLike, batch_size: int = EVAL_BATCH_SIZE) -> ClassifierExtractor:
        """The classifier `train_classifier` wrote to `workdir`, its json and params' sha256 checked."""
        workdir = Path(workdir)
        meta_path, params_path = workdir / META_FILE, workdir / PARAMS_FILE
        for path in (meta_path, params_path):
            if not path.is_file():
                raise FileNotFoundError(f"no {path}; create it with {COMMAND} --workdir={workdir} "
                                        "--dataset=NAME --resolution=N --channels=C")
        meta = _read_meta(meta_path)
        data = params_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta["params_sha256"]:
            raise ValueError(f"{params_path} does not match the params_sha256 in {meta_path} (damaged, "
                             f"or the files are from different runs); recreate them with {COMMAND}")
        model = Classifier(meta["num_classes"], meta["feature_dim"], meta["width"])
        shape = (meta["resolution"], meta["resolution"], meta["channels"])
        target = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))["params"]
        params = flax.serialization.msgpack_restore(data)
        expected = jax.tree.map(lambda a: (a.shape, np.dtype(a.dtype)), target)
        got = jax.tree.map(lambda a: (a.shape, np.asarray(a).dtype), params)
        if got != expected:
            raise ValueError(f"{params_path} holds params of another shape than {meta_path} "
                             f"describes; recreate them with {COMMAND}")
        return cls(params, meta, batch_size)

    def __call__(self, batch_images: np.ndarray) -> dict[str, np.ndarray]:
        """{'features': float32 (N, feature_dim), 'logits': float32 (N, num_classes)}."""
        batch_images = np.asarray(batch_images)
        if batch_images.dtype != np.uint8:
            raise ValueError(f"{self.name} takes uint8 images in [0, 255], got dtype {batch_images.dtype}")
        if batch_images.ndim != 4 or batch_images.shape[1:] != self.image_shape:
            expected = ", ".join(map(str, self.image_shape))
            raise ValueError(f"{self.name} takes images of shape (N, {expected}), got "
                             f"{batch_images.shape}; resize them with "
                             "gan_jax.data.sources.prepare_images")
        n, size = len(batch_images), self.batch_size
        out = {"features": np.empty((n, self.num_features), np.float32),
               "logits": np.empty((n, self.num_logits), np.float32)}
        for start in range(0, n, size):
            chunk = batch_images[start:start + size]
            padded = np.zeros((size, *self.image_shape), np.uint8)
            padded[:len(chunk)] = chunk
            features, logits = jax.device_get(_features_and_logits(self.params, padded, model=self.model))
            out["features"][start:start + len(chunk)] = features[:len(chunk)]
            out["logits"][start:start + len(chunk)] = logits[:len(chunk)]
        return out


def fit_and_test(train: ImageSource, train_idx: np.ndarray, test: ImageSource,
                 test_idx: np.ndarray, steps: int, seed: int, feature_dim: int = 128) -> float:
    """Test accuracy on test[test_idx] of a fresh classifier trained `steps` steps on
    train[train_idx] (batches and init from `seed`); the same arguments give the same number."""
    model = Classifier(train.num_classes, feature_dim, WIDTH)
    params = fit(model, train, train_idx, steps, seed)
    meta = {"num_classes": train.num_classes, "feature_dim": feature_dim, "width": WIDTH,
            "resolution": train.image_shape[0], "channels": train.image_shape[2],
            "dataset": train.name, "params_sha256": ""}
    return accuracy(ClassifierExtractor(params, meta), test, test_idx)
