"""Image data sources: random access to uint8 NHWC images (and int32 labels) by example index."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import importlib.util
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from gan_jax.data.errors import DataError
from gan_jax.data.idx import read_idx
from gan_jax.data.workers import map_in_processes, resolve_workers

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "GAN_JAX_FASHION_MNIST_DIR"
MIXED_CHANNELS = ("error", "convert")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
_16_BIT_GRAY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})  # a PNG's 16-bit gray may be "I"
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as Pillow's 'L' conversion


class ImageSource(Protocol):
    """Random-access image data set at a fixed resolution and channel count."""

    name: str
    num_examples: int
    image_shape: tuple[int, int, int]
    num_classes: int | None
    decodes: bool  # `get` decodes files: worth loading batches in worker processes

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """{'image': uint8 (n,H,W,C), 'label': int32 (n,)} for flat indices; pure."""
        ...

    def fingerprint(self) -> str | None:
        """A hash of the content, where it is cheap to compute (None: not computed)."""
        ...


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """In-memory source over already prepared uint8 images (N, H, W, C)."""

    name: str
    images: np.ndarray
    labels: np.ndarray | None = None
    num_classes: int | None = None
    decodes = False

    @property
    def num_examples(self) -> int:
        """Number of examples."""
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.images.shape[1:])

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Images (and labels) at the given flat indices."""
        indices = np.asarray(indices)
        batch = {"image": self.images[indices]}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch

    def fingerprint(self) -> str:
        """sha256 of the prepared images and the labels."""
        sha = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        if self.labels is not None:
            sha.update(np.ascontiguousarray(self.labels).tobytes())
        return sha.hexdigest()


class TfdsSource:
    """Lazy source over a TFDS random-access data source; decodes and resizes in `get`."""

    decodes = True

    def __init__(self, name: str, data_source: Sequence[dict[str, Any]], resolution: int, channels: int,
                 num_classes: int | None):
        self.name = name
        self.num_examples = len(data_source)
        self.image_shape = (resolution, resolution, channels)
        self.num_classes = num_classes
        self._data_source = data_source

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Decode, resize and stack the examples at the given flat indices."""
        records = [self._data_source[int(i)] for i in np.asarray(indices).reshape(-1)]
        res, _, channels = self.image_shape
        images = [prepare_image(np.asarray(r["image"]), res, channels) for r in records]
        batch = {"image": np.stack(images) if images else np.zeros((0, *self.image_shape), np.uint8)}
        if self.num_classes is not None:
            batch["label"] = np.array([r["label"] for r in records], np.int32)
        return batch

    def fingerprint(self) -> None:
        """None: hashing would decode the whole data set (TFDS versions its data sets instead)."""
        return None


# ---------------------------------------------------------------------------------------------
# Shared image helpers.


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert an (H, W, C) image with C in {1, 3, 4} (alpha dropped) to 1 (luma) or 3 (RGB) channels."""
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3] if image.shape[-1] == 4 else image
    if image.shape[-1] == channels:
        return image
    if channels == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 1 and image.shape[-1] == 3:
        luma = (image.astype(np.float32) @ _LUMA)[..., None]
        return quantize(luma) if image.dtype == np.uint8 else luma
    raise DataError(f"cannot convert an image with {image.shape[-1]} channels to {channels}; use 1 or 3")


def resize_and_crop(image: np.ndarray, resolution: int,
                    resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """Resize (H, W, C) so the shorter side is `resolution`, then center-crop to a square; float32 out."""
    image = image.astype(np.float32)
    height, width = image.shape[:2]
    if height == width == resolution:
        return image
    scale = resolution / min(height, width)
    new_h, new_w = max(resolution, round(height * scale)), max(resolution, round(width * scale))
    top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
    planes = [np.asarray(Image.fromarray(image[..., c]).resize((new_w, new_h), resample))
              for c in range(image.shape[-1])]
    return np.stack(planes, axis=-1)[top:top + resolution, left:left + resolution]


def quantize(image: np.ndarray) -> np.ndarray:
    """Round float values in [0, 255] to uint8, clipping overshoot."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def prepare_image(image: np.ndarray, resolution: int, channels: int,
                  resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """Convert channels, resize/crop to resolution and quantise: uint8 (resolution, resolution, channels)."""
    image = convert_channels(image, channels)
    if image.shape[:2] == (resolution, resolution) and image.dtype == np.uint8:
        return image
    return quantize(resize_and_crop(image, resolution, resample))


def prepare_images(images: np.ndarray, resolution: int, channels: int,
                   resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """`prepare_image` over a stack (N, H, W, C), returning uint8 (N, resolution, resolution, channels)."""
    out = np.empty((len(images), resolution, resolution, channels), np.uint8)
    for i, image in enumerate(images):
        out[i] = prepare_image(image, resolution, channels, resample)
    return out


# ---------------------------------------------------------------------------------------------
# Source factories: (argument after 'name:', resolution, channels, data_dir) -> ImageSource.


HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0  # fixed, not a training seed: every classifier of a data set has one test set


def holdout_split(num_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sorted example indices: the last 20% of a fixed permutation is the test set."""
    order = np.random.default_rng(HOLDOUT_SEED).permutation(num_examples)
    num_test = max(1, round(num_examples * HOLDOUT_FRACTION))
    return np.sort(order[:-num_test]), np.sort(order[-num_test:])


def _digits_file() -> Path:
    """scikit-learn's digits.csv.gz, found without importing scikit-learn (seconds of imports)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("the digits data set ships with scikit-learn: pip install scikit-learn")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def _digits_source(arg: str, resolution: int, channels: int, data_dir: str | None) -> ImageSource:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16), labels 0..9; 'digits:train'
    and 'digits:test' are the two parts of `holdout_split` (the classifier's test set)."""
    if arg not in ("", "train", "test"):
        raise DataError(f"unknown digits split in 'digits:{arg}'; use 'digits', 'digits:train' "
                        "or 'digits:test'")
    with gzip.open(_digits_file()) as f:  # as sklearn.datasets.load_digits reads it
        rows = np.loadtxt(f, delimiter=",")  # 64 pixel values, then the label
    images = rows[:, :-1].reshape(-1, 8, 8, 1).astype(np.float32) * (255.0 / 16.0)
    labels = rows[:, -1].astype(np.int32)
    if arg:
        keep = holdout_split(len(labels))[arg == "test"]
        images, labels = images[keep], labels[keep]
    prepared = prepare_images(images, resolution, channels, Image.Resampling.BILINEAR)
    return ArraySource(f"digits:{arg}" if arg else "digits", prepared, labels, num_classes=10)


_FASHION_SPLITS = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}


def _fashion_mnist_source(arg: str, resolution: int, channels: int, data_dir: str | None) -> ImageSource:
    """Fashion-MNIST from the original IDX gzip files (Debian package dataset-fashion-mnist)."""
    split = arg or "train"
    if split not in _FASHION_SPLITS:
        raise DataError(f"unknown fashion_mnist split {split!r}; use one of {', '.join(_FASHION_SPLITS)}")
    directory = Path(data_dir or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    images, labels = [], []
    for prefix in _FASHION_SPLITS[split]:
        image_path = directory / f"{prefix}-images-idx3-ubyte.gz"
        label_path = directory / f"{prefix}-labels-idx1-ubyte.gz"
        for path in (image_path, label_path):
            if not path.is_file():
                raise DataError(f"fashion_mnist file {path} not found; run 'apt-get install dataset-fashion-mnist' "
                                f"or set {FASHION_MNIST_ENV} to a folder with the IDX files")
        images.append(read_idx(image_path))
        labels.append(read_idx(label_path))
        if images[-1].ndim != 3 or labels[-1].shape != images[-1].shape[:1]:
            raise DataError(f"fashion_mnist files in {directory} have shapes {images[-1].shape} and "
                            f"{labels[-1].shape}; expected (N, 28, 28) and (N,), re-download them")
    image_stack = np.concatenate(images)[..., None]
    label_stack = np.concatenate(labels).astype(np.int32)
    if label_stack.max(initial=0) >= 10:
        raise DataError(f"fashion_mnist labels in {directory} exceed 9; re-download the label files")
    prepared = prepare_images(image_stack, resolution, channels)
    return ArraySource(f"fashion_mnist:{split}", prepared, label_stack, num_classes=10)


def _tfds_source(arg: str, resolution: int, channels: int, data_dir: str | None) -> ImageSource:
    """A prepared (array_record) TFDS data set 'name[:split]', decoded lazily; never downloads."""
    import tensorflow_datasets as tfds

    name, _, split = arg.partition(":")
    split = split or "train"
    if not name:
        raise DataError("tfds spec needs a data set name; use e.g. 'tfds:mnist' or 'tfds:cifar10:test'")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise DataError(f"unknown tfds data set {name!r}; see tfds.list_builders()") from None
    features = builder.info.features
    if "image" not in features:
        raise DataError(f"tfds data set {name!r} has no 'image' feature (features: {', '.join(features)}); "
                        "pick an image data set")
    label = features["label"] if "label" in features else None
    num_classes = label.num_classes if isinstance(label, tfds.features.ClassLabel) else None
    try:
        data_source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except (NotImplementedError, KeyError):  # KeyError: 'splits is empty' (the default data_dir)
        raise DataError(_tfds_unprepared_message(builder, name, split, data_dir)) from None
    except ValueError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot open tfds data set {name!r} split {split!r}: {first_line}; "
                        "check the split name/slice (e.g. 'train', 'test[:10%]')") from None
    if len(data_source) == 0:
        raise DataError(f"tfds data set {name!r} split {split!r} is empty; pick another split")
    return TfdsSource(f"tfds:{name}:{split}", data_source, resolution, channels, num_classes)


def _tfds_unprepared_message(builder: Any, name: str, split: str, data_dir: str | None) -> str:
    """One-line explanation of why a TFDS data set cannot be opened for random access, with the fix."""
    import tensorflow_datasets as tfds

    root = os.path.expanduser(os.fspath(data_dir or tfds.core.constants.DATA_DIR))
    prepare = (f"python -c \"import tensorflow_datasets as tfds; "
               f"tfds.builder('{name}').download_and_prepare(file_format='array_record')\"")
    if builder.is_prepared():
        file_format = getattr(builder.info.file_format, "value", builder.info.file_format)
        return (f"tfds data set {name!r} in {root} is prepared as {file_format}, but random access "
                f"needs array_record; re-prepare it: {prepare} (needs tensorflow)")
    return (f"tfds data set {name!r} (split {split!r}) is not prepared in {root}; download it once on a machine "
            f"with internet: {prepare} (needs tensorflow) and copy {os.path.join(root, name)}, "
            "or set data.data_dir")


FILES_PER_WORKER = 64  # a folder decodes in min(data.workers, ceil(files / 64)) processes
IMAGE_CACHE_ENV = "GAN_JAX_IMAGE_CACHE"
_IMAGE_CACHE_FORMAT = 1  # bump when the decoding changes, so older cache files are not read


def _folder_source(arg: str, resolution: int, channels: int, data_dir: str | None,
                   mixed_channels: str = "error", workers: int = 1, cache: str = "") -> ImageSource:
    """Every image file under a folder (recursive, sorted), decoded in `workers` processes; no labels.

    A folder mixing grayscale, RGB and with-alpha images is refused unless mixed_channels is
    'convert' (each image is then converted to `channels`, alpha dropped). The decoded images are
    kept in `image_cache_file(...)` (unless cache is 'off') and memory-mapped from it."""
    if not arg:
        raise DataError("folder spec needs a path; use 'folder:/path/to/images'")
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory; check the path")
    # A symlink to a missing file is kept, so it is refused by name below (is_file() is False).
    paths = sorted((p for p in root.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink())),
                   key=lambda p: p.relative_to(root).as_posix())
    if not paths:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}; add images "
                        "or fix the path")
    cache_file = image_cache_file(cache, root, paths, resolution, channels, mixed_channels)
    if cache_file is not None and cache_file.is_file():
        return ArraySource(f"folder:{root}", np.load(cache_file, mmap_mode="r"))
    images = decode_folder(root, paths, resolution, channels, mixed_channels, workers)
    if cache_file is not None:
        images = _write_cache(cache_file, images)
    return ArraySource(f"folder:{root}", images)


def decode_folder(root: Path, paths: list[Path], resolution: int, channels: int,
                  mixed_channels: str, workers: int) -> np.ndarray:
    """uint8 (len(paths), resolution, resolution, channels) of the files, decoded in
    min(workers, ceil(len(paths) / FILES_PER_WORKER)) processes; DataError naming unreadable files
    or mixed channel layouts."""
    workers = min(resolve_workers(workers), -(-len(paths) // FILES_PER_WORKER))
    jobs = [(str(path), resolution, channels) for path in paths]
    images = np.empty((len(paths), resolution, resolution, channels), np.uint8)
    bad, layouts = [], {}
    decoded = map_in_processes(decode_file, jobs, workers, f"decoding the images in {root}",
                               chunksize=16)
    for i, (path, (layout, image, reason)) in enumerate(zip(paths, decoded)):
        name = path.relative_to(root).as_posix()
        if image is None:
            bad.append(f"{name}{reason}")
        else:
            layouts.setdefault(layout, []).append(name)
            images[i] = image
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(f"{len(bad)} unreadable image(s) in {root}: {shown}; remove or fix them")
    if len(layouts) > 1 and mixed_channels != "convert":
        counts = ", ".join(f"{len(names)} {layout} (e.g. {names[0]})"
                           for layout, names in sorted(layouts.items()))
        raise DataError(f"{root} mixes channel layouts: {counts}; convert the files to one layout, "
                        f"or pass --config.data.mixed_channels=convert to convert each image to "
                        f"data.channels={channels} (alpha dropped)")
    return images


def decode_file(job: tuple[str, int, int]) -> tuple[str | None, np.ndarray | None, str]:
    """(layout, prepared uint8 image, '') of the file of job (path, resolution, channels), or
    (None, None, ' (why)' or '') when it cannot be read."""
    path, resolution, channels = job
    try:
        with Image.open(path) as image:
            layout = image_layout(image)
        return layout, prepare_image(load_image(path), resolution, channels), ""
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return None, None, _unreadable_reason(Path(path), e)


def image_cache_dir(cache: str) -> Path | None:
    """Where decoded folders are kept: `cache`, or with "" $GAN_JAX_IMAGE_CACHE, else
    $GAN_JAX_CACHE/images (default ~/.cache/gan_jax/images); None for "off"."""
    if cache == "off":
        return None
    base = os.environ.get("GAN_JAX_CACHE") or Path.home() / ".cache" / "gan_jax"
    return Path(cache or os.environ.get(IMAGE_CACHE_ENV) or Path(base) / "images").expanduser()


def image_cache_file(cache: str, root: Path, paths: list[Path], resolution: int, channels: int,
                     mixed_channels: str) -> Path | None:
    """The .npy of these decoded files: named by a hash of the folder, each file's name, size and
    mtime, and the decoding arguments, so a changed, added or removed image misses it; None
    when the cache is off or a file cannot be stat'ed (it is then reported as unreadable)."""
    directory = image_cache_dir(cache)
    if directory is None:
        return None
    try:
        stats = [p.stat() for p in paths]
    except OSError:
        return None
    files = [(p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns)
             for p, st in zip(paths, stats)]
    key = json.dumps([_IMAGE_CACHE_FORMAT, str(root.resolve()), resolution, channels,
                      mixed_channels, files])
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return directory / f"folder-{resolution}px-{channels}ch-{digest}.npy"


def _write_cache(path: Path, images: np.ndarray) -> np.ndarray:
    """Write `images` to `path` atomically and return them memory-mapped from it; on an OSError
    (a read-only or full disk) warn in one line and return them as they are."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to the name
            np.save(f, images)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # e.g. NotADirectoryError: the folder is a file
            tmp.unlink()
        warnings.warn(f"decoded images not cached in {path.parent} ({e.strerror or e}); "
                      "set data.cache to a writable folder or 'off'", stacklevel=2)
        return images
    return np.load(path, mmap_mode="r")


def _unreadable_reason(path: Path, error: Exception) -> str:
    """' (why)' for the errors whose fix is not obvious from the file itself, else ''."""
    if path.is_symlink() and not path.exists():
        return f" (dangling symlink to {os.readlink(path)})"
    if isinstance(error, Image.DecompressionBombError):
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # read the header only
        try:
            with Image.open(path) as image:
                pixels = image.width * image.height
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        return (f" (too large: {pixels:,} pixels > Pillow's limit of {2 * limit:,}, twice "
                f"PIL.Image.MAX_IMAGE_PIXELS; resize it or raise that limit)")
    return ""


def image_layout(image: Image.Image) -> str:
    """'grayscale', 'RGB' or 'with alpha' (RGBA, LA, or a palette with transparency)."""
    if image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        return "with alpha"
    return "grayscale" if image.mode in _GRAY_MODES else "RGB"


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Fully decode an image file with Pillow into uint8 (H, W, 1) gray or (H, W, 3) RGB.

    16-bit images keep their high byte (value >> 8): Pillow itself decodes 16-bit RGB that way,
    and its 'L' conversion of 16-bit gray would clip every value above 255 to 255 instead."""
    with Image.open(path) as image:
        image.load()
        if image.mode in _16_BIT_GRAY_MODES or (image.mode == "I" and image.format == "PNG"):
            array = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
        else:
            array = np.asarray(image.convert("L" if image.mode in _GRAY_MODES else "RGB"))
    return array[..., None] if array.ndim == 2 else array


def subset_indices(labels: np.ndarray | None, num_examples: int, fraction: float, seed: int
                   ) -> np.ndarray:
    """Sorted indices of a fixed `fraction` of the examples, drawn with `seed`: per class when
    `labels` are given (round(fraction * class size), at least 1 of each class), else overall."""
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.permutation(num_examples)[:max(1, round(fraction * num_examples))])
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:max(1, round(fraction * n))]
              for c, n in zip(*np.unique(labels, return_counts=True))]
    return np.sort(np.concatenate(chosen))


def subset_source(source: ArraySource, fraction: float, seed: int) -> ArraySource:
    """The in-memory `source` cut to `subset_indices` (the whole source for fraction 1)."""
    if fraction >= 1:
        return source
    if not isinstance(source, ArraySource):
        raise DataError(f"data.train_fraction < 1 needs an in-memory data set (digits, "
                        f"fashion_mnist, folder:), not {source.name}")
    keep = subset_indices(source.labels, source.num_examples, fraction, seed)
    return ArraySource(f"{source.name}[train_fraction={fraction},subset_seed={seed}]",
                       source.images[keep], None if source.labels is None else source.labels[keep],
                       source.num_classes)


SOURCES: dict[str, Callable[[str, int, int, str | None], ImageSource]] = {
    "digits": _digits_source,
    "fashion_mnist": _fashion_mnist_source,
    "tfds": _tfds_source,
    "folder": _folder_source,
}


def make_source(spec: str, resolution: int, channels: int, *, data_dir: str | None = None,
                mixed_channels: str = "error", workers: int = 1, cache: str = "") -> ImageSource:
    """Build the source named by `spec` ('digits', 'fashion_mnist[:split]', 'tfds:name[:split]', 'folder:path').

    `mixed_channels` ('error' | 'convert') is what a folder mixing grayscale, RGB and alpha
    images does; a folder decodes in up to `workers` processes (0: one per core) into the image
    cache `cache` (see `image_cache_dir`; 'off': none)."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise DataError(f"resolution must be a positive integer, got {resolution!r}")
    name, _, arg = spec.partition(":")
    factory = SOURCES.get(name)
    if factory is None:
        raise DataError(f"unknown data set {spec!r}; known names: {', '.join(SOURCES)}")
    if mixed_channels not in MIXED_CHANNELS:
        raise DataError(f"mixed_channels must be one of {', '.join(MIXED_CHANNELS)}, got {mixed_channels!r}")
    if name == "folder":
        return _folder_source(arg, int(resolution), channels, data_dir, mixed_channels, workers,
                              cache)
    return factory(arg, int(resolution), channels, data_dir)
