"""Inpainting masks drawn from a key: axis-aligned boxes and DeepFill v2 free-form brush strokes.

A mask is float32 (H, W, 1) with 1 = missing, 0 = known; every function is pure in its key, so
a run's masks follow from its per-example keys (reproducible, resumable, device-count free).

Free-form strokes re-implement `brush_stroke_mask` of JiahuiYu/generative_inpainting
`inpaint_ops.py` (the same generator as open-mmlab/mmagic `mmagic/utils/trans_utils.py`
`brush_stroke_mask`): randint(1, 4) strokes, each of randint(4, 12) segments from a vertex drawn
uniformly on the grid; the segment angles are drawn in [2pi/5 - U(0, 2pi/15), 2pi/5 + U(0, 2pi/15)]
and mirrored (2pi - angle) on even segments; segment lengths ~ N(r, r // 2) clipped to [0, 2r],
r = sqrt(H^2 + W^2) / 8; each vertex is clipped to the image and truncated to integers; the stroke
is a line of width int(U(12, 40)) with discs of radius width // 2 on its vertices. Rasterised
here as every pixel centre within width / 2 of a segment (a capsule per segment, which covers the
discs). Deviations, named:
* The widths 12-40 are the reference's at 256 px; they are scaled by min(H, W) / 256 (a 32 px
  image gets 1.5-5 px strokes) so small images get strokes of the same relative width.
* The reference's random flips (`mask.transpose(...)`, whose result it discards) do nothing there
  and are left out here.
* Covered area: a draw outside `area_range` is redrawn (up to MAX_TRIES times, from
  fold_in(key, try)); mmagic's `get_irregular_mask` redraws the same way (area_ratio_range).
  If none of MAX_TRIES draws fits, the last draw is kept.

Boxes (the reference's `random_bbox`/`bbox2mask` place a fixed 128x128 box less a random margin
at 256 px): here the covered fraction is drawn uniformly in `area_range`, the aspect ratio
log-uniformly in [1/2, 2], the position uniformly, all on the pixel grid.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

MASK_KINDS = ("box", "free")
# brush_stroke_mask's constants (inpaint_ops.py)
MAX_STROKES = 3                      # np.random.randint(1, 4)
MIN_VERTEX, MAX_VERTEX = 4, 12       # segments per stroke: np.random.randint(4, 12)
MEAN_ANGLE = 2 * math.pi / 5
ANGLE_RANGE = 2 * math.pi / 15
MIN_WIDTH, MAX_WIDTH = 12, 40        # at REFERENCE_SIZE px
REFERENCE_SIZE = 256
MAX_TRIES = 100


def _segment_distances(points: Array, height: int, width: int) -> Array:
    """(S, H, W) distance of each pixel centre (x = column, y = row) to each segment
    points[s] -> points[s + 1]; points (S + 1, 2) as (x, y)."""
    y, x = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                        jnp.arange(width, dtype=jnp.float32), indexing="ij")
    p = jnp.stack([x, y], -1)[None]                                   # (1, H, W, 2)
    a, b = points[:-1, None, None], points[1:, None, None]             # (S, 1, 1, 2)
    ab = b - a
    t = jnp.clip(jnp.sum((p - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    return jnp.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def stroke_mask(key: Array, height: int, width: int) -> Array:
    """One DeepFill v2 free-form mask (H, W) float32 in {0, 1} (see the module docstring)."""
    k_count, *k_strokes = jax.random.split(key, 1 + MAX_STROKES)
    num_strokes = jax.random.randint(k_count, (), 1, MAX_STROKES + 1)
    radius = math.sqrt(height * height + width * width) / 8
    scale = min(height, width) / REFERENCE_SIZE

    def one(k: Array) -> Array:
        kn, ka1, ka2, ka, kx, ky, kr, kw = jax.random.split(k, 8)
        segments = jax.random.randint(kn, (), MIN_VERTEX, MAX_VERTEX)
        angle_min = MEAN_ANGLE - jax.random.uniform(ka1, (), maxval=ANGLE_RANGE)
        angle_max = MEAN_ANGLE + jax.random.uniform(ka2, (), maxval=ANGLE_RANGE)
        angles = jax.random.uniform(ka, (MAX_VERTEX - 1,), minval=angle_min, maxval=angle_max)
        even = jnp.arange(MAX_VERTEX - 1) % 2 == 0
        angles = jnp.where(even, 2 * math.pi - angles, angles)
        lengths = jnp.clip(radius + (radius // 2) * jax.random.normal(kr, (MAX_VERTEX - 1,)),
                           0.0, 2 * radius)
        start = jnp.stack([jax.random.randint(kx, (), 0, width),
                           jax.random.randint(ky, (), 0, height)]).astype(jnp.float32)

        def step(v, inputs):
            angle, r = inputs
            new = jnp.floor(jnp.clip(v + r * jnp.stack([jnp.cos(angle), jnp.sin(angle)]),
                                     0.0, jnp.array([width, height], jnp.float32)))
            return new, new

        _, rest = jax.lax.scan(step, start, (angles, lengths))
        points = jnp.concatenate([start[None], rest])                  # (MAX_VERTEX, 2)
        brush = jnp.floor(jax.random.uniform(kw, (), minval=MIN_WIDTH, maxval=MAX_WIDTH)) * scale
        valid = jnp.arange(MAX_VERTEX - 1) < segments
        near = _segment_distances(points, height, width) <= brush / 2
        return jnp.any(near & valid[:, None, None], axis=0)

    strokes = jax.vmap(one)(jnp.stack(k_strokes))
    used = jnp.arange(MAX_STROKES) < num_strokes
    return jnp.any(strokes & used[:, None, None], axis=0).astype(jnp.float32)


def box_mask(key: Array, height: int, width: int, area_range: tuple[float, float]) -> Array:
    """One axis-aligned box (H, W) float32 in {0, 1} covering about U(area_range) of the image."""
    ka, kr, ky, kx = jax.random.split(key, 4)
    area = jax.random.uniform(ka, (), minval=area_range[0], maxval=area_range[1]) * height * width
    ratio = jnp.exp(jax.random.uniform(kr, (), minval=-math.log(2), maxval=math.log(2)))
    h = jnp.clip(jnp.round(jnp.sqrt(area * ratio)), 1, height).astype(jnp.int32)
    w = jnp.clip(jnp.round(area / h), 1, width).astype(jnp.int32)
    top = jax.random.randint(ky, (), 0, height - h + 1)
    left = jax.random.randint(kx, (), 0, width - w + 1)
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    return inside.astype(jnp.float32)


def _draw_once(key: Array, height: int, width: int, kinds: Sequence[str],
               area_range: tuple[float, float]) -> Array:
    """A mask (H, W) of a kind drawn uniformly from `kinds`, before the area check."""
    k_kind, k_mask = jax.random.split(key)
    draws = {"box": lambda: box_mask(k_mask, height, width, area_range),
             "free": lambda: stroke_mask(k_mask, height, width)}
    which = jax.random.randint(k_kind, (), 0, len(kinds))
    candidates = jnp.stack([draws[k]() for k in kinds])  # both drawn, one kept: compiles faster
    return candidates[which]


def draw_mask(key: Array, height: int, width: int, kinds: Sequence[str] = MASK_KINDS,
              area_range: tuple[float, float] = (0.0, 1.0)) -> Array:
    """float32 (H, W, 1) mask, 1 = missing, of a kind in `kinds` whose covered fraction lies in
    `area_range` (closed; redrawn up to MAX_TRIES times, see the module docstring); pure in key."""
    lo, hi = area_range

    def attempt(i: Array) -> Array:
        return _draw_once(jax.random.fold_in(key, i), height, width, tuple(kinds), area_range)

    def fits(mask: Array) -> Array:
        area = jnp.mean(mask)
        return (area >= lo) & (area <= hi)

    def cond(carry):
        i, mask = carry
        return (i < MAX_TRIES) & ~fits(mask)

    def body(carry):
        i, _ = carry
        return i + 1, attempt(i + 1)

    _, mask = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), attempt(0)))
    return mask[..., None]


def draw_masks(keys: Array, height: int, width: int, kinds: Sequence[str] = MASK_KINDS,
               area_range: tuple[float, float] = (0.0, 1.0)) -> Array:
    """float32 (B, H, W, 1) masks, mask i from keys[i] (`draw_mask`)."""
    return jax.vmap(lambda k: draw_mask(k, height, width, kinds, area_range))(keys)


def check_kinds(kinds: Sequence[str]) -> None:
    """ValueError (one line) unless `kinds` is a non-empty subset of MASK_KINDS."""
    bad = [k for k in kinds if k not in MASK_KINDS]
    if not kinds or bad:
        raise ValueError(f"mask kinds must be a non-empty subset of {', '.join(MASK_KINDS)}, "
                         f"got {', '.join(kinds) or 'none'}")
