"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"): the `bgc` pipeline of NVlabs stylegan2-ada-pytorch
`training/augment.py` (AugmentPipe) and the p controller of `training/training_loop.py`.

Images are float NHWC in [-1, 1]; every op is differentiable w.r.t. the images. Each example draws
its parameters from its own key, so an augmented example is a pure function of
(key, image, p) whatever the batch split. Each op is applied with probability p * multiplier (all
multipliers 1 in `bgc`, train.py's augpipe_specs); strengths are AugmentPipe's defaults.

Geometric ops compose one inverse homogeneous 3x3 matrix per example (output pixel -> input
pixel), resampled once as the reference does: reflect padding, 2x upsampling with the sym6 wavelet,
a bilinear sample (zeros outside), sym6 downsampling. Colour ops compose one 4x4 matrix.
Deviations: (1) the reflect padding is always its maximum, size - 1 per side (the reference pads by
a batch-wide margin capped at that value; padding more only moves the zero border further away, so
the sampled values agree wherever the reference's margin suffices), so an example does not depend
on the others; (2) an example that drew no geometric (colour) op keeps its pixels bitwise, where the
reference resamples it through the identity (a change of float rounding only): p = 0 is then the
identity exactly.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.equalized import fir_filter, upsample_2x

Array = jax.Array

# training/augment.py, `wavelets['sym6']`: the low-pass filter of the geometric resampling.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
FILTER_PAD = len(SYM6) // 4  # Hz_pad

# AugmentPipe's default strengths (training/augment.py, __init__).
XINT_MAX = 0.125        # integer translation range, relative to the image size
SCALE_STD = 0.2         # log2 std of isotropic scaling
ROTATE_MAX = 1.0        # arbitrary rotation range, 1 = full circle
ANISO_STD = 0.2         # log2 std of anisotropic scaling
XFRAC_STD = 0.125       # std of fractional translation, relative to the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5      # log2 std
HUE_MAX = 1.0           # 1 = full circle
SATURATION_STD = 1.0    # log2 std

# Op indices: row `op` of an example's draws (`_draws`) is that op's.
(XFLIP, ROTATE90, XINT, SCALE, PRE_ROTATE, ANISO, POST_ROTATE, XFRAC,
 BRIGHTNESS, CONTRAST, LUMAFLIP, HUE, SATURATION) = range(13)
NUM_OPS = 13
# v of the colour ops; NumPy, so importing this module starts no JAX backend (multi-process
# runs must call jax.distributed.initialize first)
LUMA_AXIS = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / np.float32(math.sqrt(3))


# --- homogeneous matrices (training/augment.py's helpers) ---------------------------------------

def translate2d(tx, ty) -> Array:
    return jnp.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scale2d(sx, sy) -> Array:
    return jnp.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def rotate2d(theta) -> Array:
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def translate3d(t) -> Array:
    return jnp.eye(4).at[:3, 3].set(t)


def scale3d(s) -> Array:
    return jnp.diag(jnp.array([s, s, s, 1.0]))


def rotate3d(v: Array, theta) -> Array:
    """Rotation by theta about the unit axis v[:3] (Rodrigues), homogeneous 4x4."""
    x, y, z = v[0], v[1], v[2]
    s, c = jnp.sin(theta), jnp.cos(theta)
    cc = 1 - c
    return jnp.array([[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0.0],
                      [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0.0],
                      [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0.0],
                      [0.0, 0.0, 0.0, 1.0]])


# --- exact transforms of given matrices ---------------------------------------------------------

def _bilinear(image: Array, rows: Array, cols: Array) -> Array:
    """image (H, W, C) sampled at float pixel coordinates, zeros outside (grid_sample's default)."""
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(
        channel, [rows, cols], order=1, mode="constant", cval=0.0)
    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def geometric_transform(image: Array, g_inv: Array) -> Array:
    """One (H, W, C) image resampled so out(pixel) = in(g_inv @ pixel), in coordinates centred on
    the image (x right, y down, pixel units): reflect padding, sym6 2x up, bilinear, sym6 2x down
    (AugmentPipe.forward, 'Execute geometric transformations')."""
    h, w, _ = image.shape
    image = jnp.pad(image, ((h - 1, h - 1), (w - 1, w - 1), (0, 0)), mode="reflect")
    up = upsample_2x(image[None], SYM6)[0]
    g_up = (translate2d(-0.5, -0.5) @ scale2d(2.0, 2.0) @ g_inv @ scale2d(0.5, 0.5)
            @ translate2d(0.5, 0.5))
    out_h, out_w = 2 * (h + 2 * FILTER_PAD), 2 * (w + 2 * FILTER_PAD)
    ys, xs = jnp.meshgrid(jnp.arange(out_h) + 0.5 - out_h / 2, jnp.arange(out_w) + 0.5 - out_w / 2,
                          indexing="ij")
    src = jnp.einsum("ij,jhw->ihw", g_up, jnp.stack([xs, ys, jnp.ones_like(xs)]))
    rows = src[1] + up.shape[0] / 2 - 0.5
    cols = src[0] + up.shape[1] / 2 - 0.5
    sampled = _bilinear(up, rows, cols)
    # downsample2d(padding=-2 * Hz_pad, flip_filter=True): crop 1 per side, correlate, keep every 2nd
    cropped = sampled[1:-1, 1:-1]
    return fir_filter(cropped[None], SYM6[::-1], down=2)[0]


def color_transform(image: Array, c: Array) -> Array:
    """One (H, W, C) image through the 4x4 colour matrix c (rgb -> c[:3, :3] rgb + c[:3, 3]); one
    channel: the mean of the three rows, as the reference."""
    if image.shape[-1] == 3:
        return image @ c[:3, :3].T + c[:3, 3]
    if image.shape[-1] == 1:
        row = jnp.mean(c[:3], axis=0)
        return image * jnp.sum(row[:3]) + row[3]
    raise ValueError(f"ada: images must have 1 or 3 channels, got {image.shape[-1]}")


# --- per-example draws ------------------------------------------------------------------------

def _draws(key: Array) -> tuple[Array, Array, Array]:
    """(coins (13,), uniforms (13, 2), normals (13, 2)): row `op` is that op's apply coin and its
    values, all from one uniform draw (the normals by the inverse CDF; one threefry call per
    example compiles several times faster than separate draws)."""
    u = jax.random.uniform(key, (NUM_OPS, 5))
    normals = jax.scipy.special.ndtri(jnp.maximum(u[:, 3:], jnp.finfo(u.dtype).tiny))
    return u[:, 0], u[:, 1:3], normals


def draw_geometry(key: Array, p: Array, height: int, width: int) -> tuple[Array, Array]:
    """(g_inv (3, 3), applied bool): the composed inverse transform of the bgc geometric ops, in
    AugmentPipe's order, and whether any op was drawn."""
    g, applied = jnp.eye(3), jnp.zeros((), bool)
    coins, u, n = _draws(key)

    def take(op_applied, matrix):
        nonlocal g, applied
        g = jnp.where(op_applied, g @ matrix, g)
        applied = applied | op_applied

    take(coins[XFLIP] < p, scale2d(1 - 2 * jnp.floor(u[XFLIP, 0] * 2), 1.0))
    # rotate2d_inv(-theta) = rotate2d(theta)
    take(coins[ROTATE90] < p, rotate2d(jnp.pi / 2 * jnp.floor(u[ROTATE90, 0] * 4)))
    t = (u[XINT] * 2 - 1) * XINT_MAX
    take(coins[XINT] < p, translate2d(-jnp.round(t[0] * width), -jnp.round(t[1] * height)))
    s = jnp.exp2(n[SCALE, 0] * SCALE_STD)
    take(coins[SCALE] < p, scale2d(1 / s, 1 / s))
    p_rot = 1 - jnp.sqrt(jnp.clip(1 - p, 0, 1))  # P(pre or post rotation) = p
    take(coins[PRE_ROTATE] < p_rot, rotate2d((u[PRE_ROTATE, 0] * 2 - 1) * jnp.pi * ROTATE_MAX))
    s = jnp.exp2(n[ANISO, 0] * ANISO_STD)
    take(coins[ANISO] < p, scale2d(1 / s, s))
    take(coins[POST_ROTATE] < p_rot, rotate2d((u[POST_ROTATE, 0] * 2 - 1) * jnp.pi * ROTATE_MAX))
    t = n[XFRAC] * XFRAC_STD
    take(coins[XFRAC] < p, translate2d(-t[0] * width, -t[1] * height))
    return g, applied


def draw_color(key: Array, p: Array, channels: int) -> tuple[Array, Array]:
    """(c (4, 4), applied bool): the composed bgc colour matrix (brightness, contrast, luma flip,
    and for RGB hue and saturation, in AugmentPipe's order) and whether any op was drawn."""
    c, applied = jnp.eye(4), jnp.zeros((), bool)
    coins, u, n = _draws(key)
    vv = jnp.outer(LUMA_AXIS, LUMA_AXIS)

    def take(op_applied, matrix):
        nonlocal c, applied
        c = jnp.where(op_applied, matrix @ c, c)
        applied = applied | op_applied

    take(coins[BRIGHTNESS] < p, translate3d(n[BRIGHTNESS, 0] * BRIGHTNESS_STD))
    take(coins[CONTRAST] < p, scale3d(jnp.exp2(n[CONTRAST, 0] * CONTRAST_STD)))
    # a Householder reflection about the plane orthogonal to the luma axis
    take(coins[LUMAFLIP] < p, jnp.eye(4) - 2 * vv * jnp.floor(u[LUMAFLIP, 0] * 2))
    if channels > 1:
        take(coins[HUE] < p, rotate3d(LUMA_AXIS, (u[HUE, 0] * 2 - 1) * jnp.pi * HUE_MAX))
        take(coins[SATURATION] < p,
             vv + (jnp.eye(4) - vv) * jnp.exp2(n[SATURATION, 0] * SATURATION_STD))
    return c, applied


def _augment_one(image: Array, key: Array, p: Array) -> Array:
    h, w, c = image.shape
    g_inv, geometric = draw_geometry(key, p, h, w)
    image = jnp.where(geometric, geometric_transform(image, g_inv), image)
    color, colored = draw_color(key, p, c)
    return jnp.where(colored, color_transform(image, color), image)


def ada_augment(images: Array, keys: Array, p: Array) -> Array:
    """The bgc pipeline at probability p: (B, H, W, C) float, (B,) typed keys -> same shape."""
    if images.ndim != 4 or keys.shape != images.shape[:1]:
        raise ValueError(f"ada: images (B, H, W, C) and keys (B,), got {images.shape}, {keys.shape}")
    p = jnp.asarray(p, jnp.float32)
    return jax.vmap(_augment_one, in_axes=(0, 0, None))(images, keys, p).astype(images.dtype)


# --- the p controller (training/training_loop.py) ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class AdaController:
    """p adjusted from r_t = E[sign(D(real))]: every `interval` D updates,
    p <- max(0, p + sign(r_t - target) * images / (kimg * 1000)), images the real images D saw
    since the last adjustment (the reference's batch_size * ada_interval). target None: p fixed.

    training_loop.py's defaults: target 0.6 (train.py's --aug=ada), interval 4, kimg 500.
    Deviation: the first adjustment comes after `interval` updates (the reference adjusts after
    its first batch already).
    """

    target: float | None
    interval: int = 4
    kimg: float = 500.0
    initial_p: float = 0.0

    def init_state(self) -> dict[str, Array]:
        """{'p', 'rt' (the last r_t), 'sign_sum', 'count' (real examples), 'updates' (D updates)
        since the last adjustment}: float32 scalars."""
        zero = jnp.zeros((), jnp.float32)
        return {"p": jnp.asarray(self.initial_p, jnp.float32), "rt": zero, "sign_sum": zero,
                "count": zero, "updates": zero}

    def update(self, state: dict[str, Array], sign_sum: Array, count: Array) -> dict[str, Array]:
        """The state after a D update whose real logits' signs sum to `sign_sum` over `count`
        examples (both totals over all devices)."""
        if self.target is None:
            return state
        sign_sum, count = state["sign_sum"] + sign_sum, state["count"] + count
        updates = state["updates"] + 1
        due = updates >= self.interval
        rt = sign_sum / count
        p = jnp.maximum(state["p"] + jnp.sign(rt - self.target) * count / (self.kimg * 1000), 0.0)
        zero = jnp.zeros((), jnp.float32)
        keep = lambda new, old: jnp.where(due, new, old)
        return {"p": keep(p, state["p"]), "rt": keep(rt, state["rt"]),
                "sign_sum": keep(zero, sign_sum), "count": keep(zero, count),
                "updates": keep(zero, updates)}
