"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image D sees.

Images are float NHWC in [-1, 1]. Each op comes in two layers:
  * an exact transform of given per-example parameters (`brightness`, `translation`, `cutout`, ...),
    differentiable w.r.t. the images; tests and callers can pass known parameters;
  * a `random_*` wrapper that draws each example's parameters from that example's own key
    (vmapped `draw_*`), so an augmented example is a pure function of (key, image) whatever the
    batch split or device count.
Constants follow the official DiffAugment_pytorch.py: brightness + U(-0.5, 0.5); saturation
(deviation from the channel mean) x U(0, 2); contrast (deviation from the image mean) x U(0.5, 1.5);
integer translation up to round(size / 8) with zero fill; cutout of a round(size / 2) square centred
uniformly on the image (clipped at the borders).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
AugmentFn = Callable[[Array, Array], Array]

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
# fold_in(example_key, OP): each op has its own stream; adding an op changes no other op's draws.
COLOR, TRANSLATION, CUTOUT = 0, 1, 2


def _per_example(values: Array, images: Array) -> Array:
    """(B,) values -> (B, 1, 1, 1) in the images' dtype, ready to broadcast over an image."""
    return jnp.asarray(values).reshape(-1, 1, 1, 1).astype(images.dtype)


def _round_half_up(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def max_shift(size: int) -> int:
    """Largest translation along an axis of `size` pixels: round(size / 8), as the reference."""
    return _round_half_up(size, TRANSLATION_RATIO)


def cutout_size(size: int) -> int:
    """Side of the cutout square along an axis of `size` pixels: round(size / 2)."""
    return _round_half_up(size, CUTOUT_RATIO)


# --- exact transforms of given per-example parameters -----------------------------------------

def brightness(images: Array, shifts: Array) -> Array:
    """x + b per example; shifts: (B,)."""
    return images + _per_example(shifts, images)


def saturation(images: Array, factors: Array) -> Array:
    """mean_c + s (x - mean_c), mean over channels per pixel; factors: (B,). No-op on 1 channel."""
    mean = jnp.mean(images, axis=-1, keepdims=True)
    return mean + (images - mean) * _per_example(factors, images)


def contrast(images: Array, factors: Array) -> Array:
    """mean + c (x - mean), mean over each whole image (H, W, C); factors: (B,)."""
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    return mean + (images - mean) * _per_example(factors, images)


def color(images: Array, params: Array) -> Array:
    """contrast(saturation(brightness(x))); params: (B, 3) = (brightness, saturation, contrast)."""
    images = brightness(images, params[:, 0])
    images = saturation(images, params[:, 1])
    return contrast(images, params[:, 2])


def _translate_one(image: Array, shift: Array) -> Array:
    h, w = image.shape[:2]
    rows, cols = jnp.arange(h) - shift[0], jnp.arange(w) - shift[1]
    keep = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    moved = image[jnp.clip(rows, 0, h - 1)][:, jnp.clip(cols, 0, w - 1)]
    # where (not a product) so pixels shifted out get exactly zero gradient, even if inf.
    return jnp.where(keep[..., None], moved, 0)


def translation(images: Array, shifts: Array) -> Array:
    """Move each image's content by integer (dy, dx): out[y, x] = in[y - dy, x - dx], 0 outside.

    shifts: (B, 2) integers (positive = down, right). Gradients reach only the pixels kept.
    """
    return jax.vmap(_translate_one)(images, shifts)


def _cutout_one(image: Array, corner: Array) -> Array:
    h, w = image.shape[:2]
    rows, cols = jnp.arange(h) - corner[0], jnp.arange(w) - corner[1]
    inside = ((rows >= 0) & (rows < cutout_size(h)))[:, None] & (
        (cols >= 0) & (cols < cutout_size(w)))[None, :]
    return jnp.where(inside[..., None], 0, image)


def cutout(images: Array, corners: Array) -> Array:
    """Zero the cutout_size(H) x cutout_size(W) square at (top, left), clipped to the image.

    corners: (B, 2) integers, may be negative or past the edge (the square is then partly outside).
    """
    return jax.vmap(_cutout_one)(images, corners)


# --- per-example parameter draws (reference distributions) --------------------------------------

def draw_color(key: Array) -> Array:
    """(3,) float32: brightness shift U(-0.5, 0.5), saturation U(0, 2), contrast U(0.5, 1.5)."""
    u = jax.random.uniform(jax.random.fold_in(key, COLOR), (3,))
    return jnp.stack([u[0] - 0.5, 2.0 * u[1], u[2] + 0.5])


def draw_translation(key: Array, height: int, width: int) -> Array:
    """(2,) int32 (dy, dx), each uniform on the integers [-max_shift(size), max_shift(size)]."""
    limit = jnp.array([max_shift(height), max_shift(width)])
    return jax.random.randint(jax.random.fold_in(key, TRANSLATION), (2,), -limit, limit + 1)


def draw_cutout(key: Array, height: int, width: int) -> Array:
    """(2,) int32 top-left corner of the cutout square.

    As in the reference, the square's centre is uniform on [0, size] (on [0, size - 1] for an odd
    cutout size) and the corner is centre - cutout_size // 2, so the square may cross a border.
    """
    sizes = jnp.array([cutout_size(height), cutout_size(width)])
    centres = jax.random.randint(jax.random.fold_in(key, CUTOUT), (2,), 0,
                                 jnp.array([height + 1, width + 1]) - sizes % 2)
    return centres - sizes // 2


# --- random ops: (images, keys) -> images -----------------------------------------------------

def _check(images: Array, keys: Array) -> None:
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"augment: images must be float NHWC, got {images.dtype} {images.shape}")
    if keys.shape != images.shape[:1]:
        raise ValueError(f"augment: keys must have shape ({images.shape[0]},) (one typed key per "
                         f"example), got {keys.shape}")


def random_color(images: Array, keys: Array) -> Array:
    """Brightness, saturation, contrast with per-example parameters from draw_color."""
    return color(images, jax.vmap(draw_color)(keys))


def random_translation(images: Array, keys: Array) -> Array:
    """Zero-filled integer translation with per-example shifts from draw_translation."""
    h, w = images.shape[1:3]
    return translation(images, jax.vmap(lambda k: draw_translation(k, h, w))(keys))


def random_cutout(images: Array, keys: Array) -> Array:
    """Cutout with per-example corners from draw_cutout."""
    h, w = images.shape[1:3]
    return cutout(images, jax.vmap(lambda k: draw_cutout(k, h, w))(keys))


# The one registry of policies; its order is the order ops are applied in (the reference's).
_OPS: dict[str, AugmentFn] = {
    "color": random_color,
    "translation": random_translation,
    "cutout": random_cutout,
}
POLICIES: tuple[str, ...] = tuple(_OPS)


def _validate(policy: Sequence[str]) -> tuple[str, ...]:
    if isinstance(policy, str):
        raise TypeError("augment: policy is a sequence of names; use parse_policy(text)")
    bad = [name for name in policy if name not in _OPS]
    if bad:
        raise ValueError(f"unknown augmentation {', '.join(map(repr, bad))}; valid: "
                         f"{', '.join(POLICIES)} (comma-separated; '' for none)")
    return tuple(policy)


def parse_policy(text: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation') in application order; '' -> ()."""
    names = _validate([name.strip() for name in text.split(",") if name.strip()])
    return tuple(name for name in POLICIES if name in names)


def diff_augment(images: Array, keys: Array, policy: Sequence[str]) -> Array:
    """Apply the named ops in POLICIES order; pure in (keys, images); same shape and dtype.

    images: (B, H, W, C) float in [-1, 1]; keys: (B,) typed PRNG keys, one per example.
    """
    policy = _validate(policy)
    _check(images, keys)
    for name in POLICIES:
        if name in policy:
            images = _OPS[name](images, keys)
    return images


@dataclasses.dataclass(frozen=True)
class DiffAugment:
    """diff_augment with a fixed policy as a value: equal policies compare and hash equal."""

    policy: tuple[str, ...]

    def __call__(self, images: Array, keys: Array) -> Array:
        return diff_augment(images, keys, self.policy)


def make_augment(policy: Sequence[str]) -> DiffAugment | None:
    """(images, keys) -> augmented images for a policy, or None when the policy is empty."""
    policy = _validate(policy)
    return DiffAugment(policy) if policy else None
