"""Image-to-image data: paired sources (pix2pix) and unpaired source pairs (CycleGAN).

Paired sources give {'a', 'b'} uint8 batches by example index; unpaired data is two independent
`ImageSource`s (A and B domains, lengths may differ), which the batch pipeline
(`data/pipeline.py`) reads with two independent index streams. Random crop and flip happen later,
inside the compiled step, with `crop_flip` from each example's key: `paired_crop_flip` (pix2pix,
the same crop and flip on A and B), or on A and B each with keys of its own (CycleGAN).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.data.sources import (
    IMAGE_SUFFIXES,
    ArraySource,
    DataError,
    ImageSource,
    _fashion_mnist_source,
    _folder_source,
    _tfds_source,
    convert_channels,
    load_image,
    prepare_image,
)

SNEAKER, ANKLE_BOOT = 7, 9  # Fashion-MNIST class indices
FASHION_RESOLUTION = 32  # the offline recipes' image size (28x28 resized by the fashion_mnist source)
EDGE_THRESHOLD = 0.5  # Sobel magnitude on [0, 1] images above which a pixel is an edge


@dataclasses.dataclass(frozen=True)
class PairSource:
    """Aligned (A, B) image pairs in memory, uint8 (N, H, W, C) each."""

    name: str
    a: np.ndarray
    b: np.ndarray
    paired = True
    decodes = False

    @property
    def num_examples(self) -> int:
        """Number of pairs."""
        return len(self.a)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image, A and B alike."""
        return tuple(self.a.shape[1:])

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """{'a': uint8 (n,H,W,C), 'b': uint8 (n,H,W,C)} at the given flat indices; pure."""
        indices = np.asarray(indices)
        return {"a": self.a[indices], "b": self.b[indices]}

    def fingerprint(self) -> str:
        """sha256 of the A images, then the B images."""
        sha = hashlib.sha256(np.ascontiguousarray(self.a).tobytes())
        sha.update(np.ascontiguousarray(self.b).tobytes())
        return sha.hexdigest()


@dataclasses.dataclass(frozen=True)
class UnpairedSources:
    """Two independent domains A and B of one split; their lengths may differ."""

    name: str
    a: ImageSource
    b: ImageSource
    paired = False

    def fingerprint(self) -> str | None:
        """sha256 of the two domains' fingerprints; None when either is not computed."""
        a, b = self.a.fingerprint(), self.b.fingerprint()
        return None if a is None or b is None else hashlib.sha256(f"{a}{b}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Folders.


def _shown(names: list[str], limit: int = 5) -> str:
    """'x, y, z' or 'x, y, z, ... and 7 more'."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _image_files(root: Path) -> dict[str, Path]:
    """Image files under root (recursive) keyed by relative path without suffix, sorted; stems unique."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory; check the path")
    files: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in files:
            raise DataError(f"{root} has two images named {key!r} ({files[key].name}, {path.name}); "
                            "keep one per name")
        files[key] = path
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}; add images "
                        "or fix the path")
    return dict(sorted(files.items()))


def _load_all(root: Path, paths: list[Path]) -> list[np.ndarray]:
    """Decoded images (H, W, 1|3); unreadable files refused, named."""
    images, bad = [], []
    for path in paths:
        try:
            images.append(load_image(path))
        except (OSError, ValueError):
            bad.append(path.relative_to(root).as_posix())
    if bad:
        raise DataError(f"{len(bad)} unreadable image(s) in {root}: {_shown(bad)}; remove or fix them")
    return images


def _split_dir(arg: str, split: str | None, spec: str) -> Path:
    if not arg:
        raise DataError(f"'{spec}' needs a path; use '{spec}:/path/to/folder'")
    root = Path(arg).expanduser()
    return root / split if split else root


def _aligned_pairs(arg: str, resolution: int, channels: int, split: str | None,
                   data_dir: str | None) -> PairSource:
    """Side-by-side A|B images (left half A, right half B), each half resized to `resolution` and converted
    to `channels`."""
    root = _split_dir(arg, split, "pairs")
    files = _image_files(root)
    images = _load_all(root, list(files.values()))
    odd = [path.relative_to(root).as_posix() for path, image in zip(files.values(), images)
           if image.shape[1] % 2]
    if odd:
        raise DataError(f"{len(odd)} image(s) in {root} have an odd width, so they cannot be split into "
                        f"A|B halves: {_shown(odd)}; crop them to an even width")
    halves = [(image[:, :image.shape[1] // 2], image[:, image.shape[1] // 2:]) for image in images]
    a = np.stack([prepare_image(left, resolution, channels) for left, _ in halves])
    b = np.stack([prepare_image(right, resolution, channels) for _, right in halves])
    return PairSource(f"pairs:{root}", a, b)


def _ab_folder_pairs(arg: str, resolution: int, channels: int, split: str | None,
                     data_dir: str | None) -> PairSource:
    """PATH/A/x.png paired with PATH/B/x.jpg by file name without suffix."""
    root = _split_dir(arg, split, "pairs_ab")
    files_a, files_b = _image_files(root / "A"), _image_files(root / "B")
    only_a = sorted(set(files_a) - set(files_b))
    only_b = sorted(set(files_b) - set(files_a))
    if only_a or only_b:
        parts = [f"{len(names)} only in {side}/ ({_shown(names)})"
                 for side, names in (("A", only_a), ("B", only_b)) if names]
        raise DataError(f"unmatched image names in {root}: {'; '.join(parts)}; every A/ image needs a B/ "
                        "image with the same name")
    a = [prepare_image(x, resolution, channels) for x in _load_all(root / "A", list(files_a.values()))]
    b = [prepare_image(x, resolution, channels) for x in _load_all(root / "B", list(files_b.values()))]
    return PairSource(f"pairs_ab:{root}", np.stack(a), np.stack(b))


def _unpaired_folders(arg: str, resolution: int, channels: int, split: str | None,
                      data_dir: str | None) -> UnpairedSources:
    """PATH/{split}A and PATH/{split}B (e.g. trainA, trainB), each a folder source; mixed layouts converted."""
    root = _split_dir(arg, None, "unpaired")
    split = split or "train"
    a, b = (_folder_source(str(root / f"{split}{side}"), resolution, channels, data_dir, "convert")
            for side in "AB")
    return UnpairedSources(f"unpaired:{root}:{split}", a, b)


def _tfds_unpaired(arg: str, resolution: int, channels: int, split: str | None,
                   data_dir: str | None) -> UnpairedSources:
    """A TFDS data set with splits {split}A and {split}B, e.g. 'cycle_gan/horse2zebra'; never downloads."""
    if not arg:
        raise DataError("'tfds' needs a data set name; use e.g. 'tfds:cycle_gan/horse2zebra'")
    split = split or "train"
    a, b = (_tfds_source(f"{arg}:{split}{side}", resolution, channels, data_dir) for side in "AB")
    return UnpairedSources(f"tfds:{arg}:{split}", a, b)


# ---------------------------------------------------------------------------------------------
# Offline Fashion-MNIST recipes.


def sobel_edges(images: np.ndarray, threshold: float = EDGE_THRESHOLD) -> np.ndarray:
    """Edge drawing of gray uint8 images (N, H, W): black (0) edges on white (255).

    x = image / 255, replicate-padded by one pixel; gx, gy = 3x3 Sobel responses
    ([[-1,0,1],[-2,0,2],[-1,0,1]] and its transpose; gy positive downwards); a pixel is an edge
    where sqrt(gx² + gy²) > threshold (0.5: a step of 1/8 of the range across the pixel).
    """
    x = np.pad(images.astype(np.float32) / 255.0, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]  # vertical [1, 2, 1] smoothing
    cols = x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]  # horizontal [1, 2, 1] smoothing
    gx = rows[:, :, 2:] - rows[:, :, :-2]
    gy = cols[:, 2:] - cols[:, :-2]
    return np.where(np.hypot(gx, gy) > threshold, 0, 255).astype(np.uint8)


def _fashion(split: str | None, channels: int, data_dir: str | None) -> ArraySource:
    """Fashion-MNIST `split` at 32x32 through the fashion_mnist source (bicubic 28 -> 32)."""
    if split not in (None, "train", "test"):
        raise DataError(f"unknown split {split!r} for the Fashion-MNIST recipes; use train or test")
    return _fashion_mnist_source(split or "train", FASHION_RESOLUTION, channels, data_dir)


def _check_fashion_resolution(name: str, resolution: int) -> None:
    if resolution != FASHION_RESOLUTION:
        raise DataError(f"{name} is {FASHION_RESOLUTION}x{FASHION_RESOLUTION}, got resolution {resolution}; "
                        f"set it to {FASHION_RESOLUTION}")


def _edges2fashion(arg: str, resolution: int, channels: int, split: str | None,
                   data_dir: str | None) -> PairSource:
    """A = `sobel_edges` of the 32x32 Fashion-MNIST image, B = that image; every class."""
    _check_fashion_resolution("edges2fashion", resolution)
    images = _fashion(split, 1, data_dir).images
    edges = sobel_edges(images[..., 0])[..., None]
    return PairSource(f"edges2fashion:{split or 'train'}", convert_channels(edges, channels),
                      convert_channels(images, channels))


def sneakers_boots_indices(labels: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of A (sneakers) and B (ankle boots) in a Fashion-MNIST split.

    train: sneakers at even indices, boots at odd ones, so the two domains come from disjoint
    halves of the split and no image has its counterpart in the other domain; test: all of each."""
    index = np.arange(len(labels))
    even = index % 2 == 0 if split == "train" else np.ones(len(labels), bool)
    odd = index % 2 == 1 if split == "train" else np.ones(len(labels), bool)
    return np.flatnonzero((labels == SNEAKER) & even), np.flatnonzero((labels == ANKLE_BOOT) & odd)


def _sneakers2boots(arg: str, resolution: int, channels: int, split: str | None,
                    data_dir: str | None) -> UnpairedSources:
    """Unpaired sneakers (class 7) -> ankle boots (class 9), 32x32; see `sneakers_boots_indices`."""
    _check_fashion_resolution("fashion_sneakers2boots", resolution)
    split = split or "train"
    fashion = _fashion(split, channels, data_dir)
    index_a, index_b = sneakers_boots_indices(fashion.labels, split)
    return UnpairedSources(f"fashion_sneakers2boots:{split}",
                           ArraySource(f"fashion_sneakers:{split}", fashion.images[index_a]),
                           ArraySource(f"fashion_ankle_boots:{split}", fashion.images[index_b]))


# ---------------------------------------------------------------------------------------------
# Registry.

PairFactory = Callable[[str, int, int, str | None, str | None], PairSource | UnpairedSources]

PAIR_SOURCES: dict[str, PairFactory] = {
    "pairs": _aligned_pairs,
    "pairs_ab": _ab_folder_pairs,
    "unpaired": _unpaired_folders,
    "tfds": _tfds_unpaired,
    "edges2fashion": _edges2fashion,
    "fashion_sneakers2boots": _sneakers2boots,
}
_NO_ARGUMENT = ("edges2fashion", "fashion_sneakers2boots")


def make_pair_source(spec: str, resolution: int, channels: int, *, split: str | None = None,
                     data_dir: str | None = None) -> PairSource | UnpairedSources:
    """Image-to-image data named by `spec`, images uint8 at resolution x resolution x channels.

    'pairs:PATH' (A|B side by side) and 'pairs_ab:PATH' (A/ and B/ matched by name) read PATH/split
    when split is given, else PATH; 'unpaired:PATH' reads PATH/{split}A and PATH/{split}B,
    'tfds:cycle_gan/NAME' the TFDS splits {split}A and {split}B; 'edges2fashion' and
    'fashion_sneakers2boots' are the offline 32x32 recipes (split train or test). split defaults
    to train where one is needed."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise DataError(f"resolution must be a positive integer, got {resolution!r}")
    name, _, arg = spec.partition(":")
    factory = PAIR_SOURCES.get(name)
    if factory is None:
        raise DataError(f"unknown image-to-image data set {spec!r}; known names: {', '.join(PAIR_SOURCES)}")
    if arg and name in _NO_ARGUMENT:
        raise DataError(f"'{name}' takes no argument, got {spec!r}; use '{name}' and pick the split with split=")
    return factory(arg, int(resolution), channels, split, data_dir)


# ---------------------------------------------------------------------------------------------
# Training-time augmentation, inside the compiled step.


def crop_flip_params(key: jax.Array, height: int, width: int, crop_size: int
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(top, left, flip) from one example's key: offsets in [0, side - crop], flip with p = 1/2.

    One draw of three uint32 words w (XLA:CPU compiles each threefry call slowly): top = w0 mod
    (height - crop + 1), left = w1 mod (width - crop + 1), flip = top bit of w2; the modulo bias
    is at most (side - crop + 1) / 2**32."""
    words = jax.random.bits(key, (3,), jnp.uint32)
    top = (words[0] % (height - crop_size + 1)).astype(jnp.int32)
    left = (words[1] % (width - crop_size + 1)).astype(jnp.int32)
    return top, left, words[2] >> 31 == 1


def crop_flip(images: tuple[jax.Array, ...], keys: jax.Array, crop_size: int, flip: bool = True
              ) -> tuple[jax.Array, ...]:
    """Random crop_size crop, and with `flip` a random horizontal flip, of (B, H, W, C) batches,
    the same on example i of every batch (drawn by `crop_flip_params` from keys[i], also when
    flip is False); the batches may differ in dtype and channels. No crop and no flip returns them
    as they are. Pure; works under jit and vmap."""
    height, width = images[0].shape[1:3]
    if not 1 <= crop_size <= min(height, width):
        raise DataError(f"crop_size {crop_size} does not fit images of {height}x{width}; "
                        "use a crop no larger than data.resolution")
    if crop_size == height == width and not flip:
        return tuple(images)

    def one(key, *xs):
        top, left, flipped = crop_flip_params(key, height, width, crop_size)

        def crop(image):
            image = jax.lax.dynamic_slice(image, (top, left, 0), (crop_size, crop_size, image.shape[2]))
            return jnp.where(flipped, image[:, ::-1], image) if flip else image

        return tuple(crop(x) for x in xs)

    return jax.vmap(one)(keys, *images)


def paired_crop_flip(a: jax.Array, b: jax.Array, keys: jax.Array, crop_size: int, flip: bool = True
                     ) -> tuple[jax.Array, jax.Array]:
    """`crop_flip` of aligned batches a and b: example i of a and b gets the same crop offset and
    the same flip (per-example keys (B,)); DataError unless a and b have the same (B, H, W)."""
    if a.shape[:3] != b.shape[:3]:
        raise DataError(f"paired batches differ in (batch, height, width): {a.shape[:3]} vs {b.shape[:3]}")
    return crop_flip((a, b), keys, crop_size, flip)
