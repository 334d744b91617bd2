"""The one place images change representation: uint8 [0, 255] at the edges, float [-1, 1] inside."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1] (works on numpy and jax arrays)."""
    return images.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], clipped and rounded to nearest."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) uint8 mosaic, row-major."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top:top + h, left:left + w] = image
    return grid


def save_png(path, images: np.ndarray, columns: int | None = None) -> None:
    """Write (N, H, W, C) uint8 images as one PNG grid; the same images give the same bytes."""
    from PIL import Image

    grid = make_grid(images, columns)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path, format="PNG")
