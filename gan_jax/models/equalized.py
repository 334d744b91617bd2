"""Equalized-learning-rate layers (Karras et al. 2018, PGGAN; 2020, StyleGAN2) and FIR resampling.

Equalized learning rate: a weight is stored as N(0, 1 / lr_multiplier**2) and multiplied at run
time by lr_multiplier / sqrt(fan_in), so every layer's output starts at unit scale and Adam's
per-parameter step moves every layer at the same relative speed; lr_multiplier < 1 (StyleGAN's
mapping network, 0.01) slows one layer down without changing its initial function.

Resampling uses a separable FIR low-pass filter (StyleGAN2's [1, 3, 3, 1], normalised to sum 1;
(1, 1) is a 2x2 box, i.e. average pooling) applied as a few shifted slices, which XLA fuses on any
backend and differentiates cheaply. Padding conventions equal NVlabs' `upfirdn2d`.

Inputs are NHWC throughout.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import conv

Array = jax.Array

SQRT2 = math.sqrt(2.0)
DEFAULT_FILTER = (1, 3, 3, 1)


# --- activations -------------------------------------------------------------------------------

def lrelu(x: Array) -> Array:
    """leaky_relu(x, 0.2) * sqrt(2): StyleGAN's activation with its variance-preserving gain."""
    return nn.leaky_relu(x, 0.2) * SQRT2


def activate(x: Array, activation: str | None) -> Array:
    """x through `activation` (None/'linear': identity, 'lrelu': `lrelu`); ValueError otherwise."""
    if activation in (None, "linear"):
        return x
    if activation == "lrelu":
        return lrelu(x)
    raise ValueError(f"unknown activation {activation!r}; use None, 'linear' or 'lrelu'")


# --- normalisation and minibatch statistics ----------------------------------------------------

def pixel_norm(x: Array, eps: float = 1e-8) -> Array:
    """x / sqrt(mean(x**2 over the last axis) + eps): unit second moment per example and pixel;
    computed in float32, returned in x's dtype."""
    y = x.astype(jnp.float32)
    return (y * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True) + eps)).astype(x.dtype)


def minibatch_stddev(x: Array, group_size: int = 4, num_features: int = 1) -> Array:
    """(B, H, W, C) -> (B, H, W, C + num_features): appends each group's mean stddev (PGGAN).

    The batch is split into groups of G = min(group_size, B) *consecutive* examples (G must divide
    B; ValueError otherwise) and the channels into `num_features` slices; each appended feature is
    the stddev over a group, averaged over a slice's channels and all pixels, broadcast over the
    group and pixels. NVlabs groups examples i, i + B/G, ... instead; with randomly ordered batches
    both are the same statistic, and consecutive groups keep the result independent of how a batch
    is split over devices whose local batch G divides.
    """
    b, h, w, c = x.shape
    g = min(group_size, b)
    if b % g:
        raise ValueError(f"minibatch stddev: group size {g} must divide the batch size {b}")
    if c % num_features:
        raise ValueError(f"minibatch stddev: {num_features} features must divide {c} channels")
    y = x.astype(jnp.float32).reshape(b // g, g, h, w, num_features, c // num_features)
    y = jnp.sqrt(jnp.var(y, axis=1) + 1e-8)               # (n, H, W, F, c/F)
    y = jnp.mean(y, axis=(1, 2, 4))                       # (n, F)
    y = jnp.broadcast_to(y[:, None, None, None, :], (b // g, g, h, w, num_features))
    return jnp.concatenate([x, y.reshape(b, h, w, num_features).astype(x.dtype)], axis=-1)


# --- FIR resampling ----------------------------------------------------------------------------

def _taps(resample_filter: Sequence[float], gain: float) -> list[float]:
    """1-D taps normalised to sum sqrt(gain) each (the 2-D filter sums to gain), flipped so that
    filtering is a convolution as in upfirdn2d (the filters used here are symmetric anyway)."""
    total = float(sum(resample_filter))
    return [float(t) / total * math.sqrt(gain) for t in reversed(resample_filter)]


def _fir_axis(x: Array, taps: list[float], axis: int, pad: tuple[int, int], down: int) -> Array:
    """Zero-pad `axis` by `pad`, correlate with `taps`, keep every `down`-th output."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    x = jnp.pad(x, widths)
    n_out = (x.shape[axis] - len(taps)) // down + 1
    out = 0.0
    for t, tap in enumerate(taps):
        out = out + tap * jax.lax.slice_in_dim(x, t, t + down * (n_out - 1) + 1, down, axis)
    return out


def fir_filter(x: Array, resample_filter: Sequence[float] = DEFAULT_FILTER,
               pad: tuple[int, int] = (0, 0), gain: float = 1.0, down: int = 1) -> Array:
    """upfirdn2d(x, f, padding=pad, gain, down) on NHWC x with the separable filter f x f."""
    taps = _taps(resample_filter, gain)
    return _fir_axis(_fir_axis(x, taps, 1, pad, down), taps, 2, pad, down)


def upsample_2x(x: Array, resample_filter: Sequence[float] = DEFAULT_FILTER) -> Array:
    """(B, H, W, C) -> (B, 2H, 2W, C): zero insertion then the FIR filter with gain 4
    (upfirdn2d.upsample2d)."""
    b, h, w, c = x.shape
    x = jnp.stack([x, jnp.zeros_like(x)], axis=2).reshape(b, 2 * h, w, c)
    x = jnp.stack([x, jnp.zeros_like(x)], axis=3).reshape(b, 2 * h, 2 * w, c)
    fw = len(resample_filter)
    return fir_filter(x, resample_filter, ((fw + 1) // 2, (fw - 2) // 2), gain=4.0)


def downsample_2x(x: Array, resample_filter: Sequence[float] = DEFAULT_FILTER) -> Array:
    """(B, H, W, C) -> (B, H/2, W/2, C): the FIR filter then every second pixel
    (upfirdn2d.downsample2d; with (1, 1), 2x2 average pooling)."""
    fw = len(resample_filter)
    return fir_filter(x, resample_filter, ((fw - 1) // 2, (fw - 2) // 2), down=2)


# --- layers ------------------------------------------------------------------------------------

def equalized_init(lr_multiplier: float):
    """N(0, 1 / lr_multiplier**2), the stored weight of an equalized layer."""
    return nn.initializers.normal(1.0 / lr_multiplier)


class EqualDense(nn.Module):
    """(..., in) -> (..., features): activation(x @ W * lr_mul / sqrt(in) + b * lr_mul).

    Params: `kernel` (in, features) ~ N(0, 1/lr_mul**2); `bias` (features,) stored as
    bias_init / lr_mul, so the initial effective bias is `bias_init` (NVlabs stores bias_init and
    scales it, which differs only when both bias_init != 0 and lr_mul != 1).
    """

    features: int
    use_bias: bool = True
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    activation: str | None = None
    dtype: Any = jnp.float32  # of the matmul and the output (the params stay float32)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", equalized_init(self.lr_multiplier), (fan_in, self.features))
        x, kernel = nn.dtypes.promote_dtype(
            x, kernel * (self.lr_multiplier / math.sqrt(fan_in)), dtype=self.dtype)
        x = jnp.dot(x, kernel)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_multiplier),
                              (self.features,))
            x = x + (bias * self.lr_multiplier).astype(x.dtype)
        return activate(x, self.activation)


class EqualConv(nn.Module):
    """(B, H, W, in) -> (B, H', W', features): equalized k x k conv, stride 1, 'same' padding.

    down=True halves H and W as NVlabs' Conv2dLayer(down=2): the FIR `resample_filter` first
    (k > 1: padded so that a stride-2 'valid' conv follows; k = 1: filtered and subsampled), then
    the conv. With resample_filter=(1, 1) and k = 3 this equals conv then 2x2 average pooling
    (PGGAN). k must be odd. Params: `kernel` (k, k, in, features) ~ N(0, 1/lr_mul**2), scaled by
    lr_mul / sqrt(k*k*in); `bias` (features,) as in EqualDense. Convolutions use `layers.conv`
    (fast gradients on XLA:CPU), 1x1 convs a matmul.
    """

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    down: bool = False
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    activation: str | None = None
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    dtype: Any = jnp.float32  # of the conv and the output (the params stay float32)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, fan_in = self.kernel_size, x.shape[-1]
        if k % 2 != 1:
            raise ValueError(f"EqualConv needs an odd kernel size, got {k}")
        kernel = self.param("kernel", equalized_init(self.lr_multiplier),
                            (k, k, fan_in, self.features))
        x, kernel = nn.dtypes.promote_dtype(
            x, kernel * (self.lr_multiplier / math.sqrt(fan_in * k * k)), dtype=self.dtype)
        x = conv2d(x, kernel, down=self.down, resample_filter=self.resample_filter)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_multiplier),
                              (self.features,))
            x = x + (bias * self.lr_multiplier).astype(x.dtype)
        return activate(x, self.activation)


def conv2d(x: Array, kernel: Array, down: bool = False,
           resample_filter: Sequence[float] = DEFAULT_FILTER) -> Array:
    """'same' stride-1 conv of NHWC x with an odd (k, k, in, out) kernel; down=True: the FIR
    filter and a stride-2 conv instead, giving H/2 x W/2 (NVlabs conv2d_resample, down=2)."""
    k = kernel.shape[0]
    fw = len(resample_filter)
    if down and k == 1:
        x = fir_filter(x, resample_filter, ((fw - 1) // 2, (fw - 2) // 2), down=2)
    elif down:
        pad = (k // 2 + (fw - 1) // 2, k // 2 + (fw - 2) // 2)
        return conv(fir_filter(x, resample_filter, pad), kernel, strides=2, padding=0)
    if k == 1:
        return jnp.dot(x, kernel[0, 0])
    return conv(x, kernel, strides=1, padding=k // 2)


__all__ = ["EqualConv", "EqualDense", "activate", "conv2d", "downsample_2x", "fir_filter",
           "lrelu", "minibatch_stddev", "pixel_norm", "upsample_2x"]
