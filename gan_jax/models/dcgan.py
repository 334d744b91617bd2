"""DCGAN generator and discriminator (Radford et al. 2016) for 8..128 px and 28 px images.

G: z -> Dense(base*base*C0) -> [ConvTranspose(4, 2, 1) -> norm -> ReLU]* -> ConvTranspose -> tanh.
D: Conv(4, 2, 1) -> LeakyReLU(0.2) -> [Conv(4, 2, 1) -> norm -> LeakyReLU(0.2)]* -> Dense(1).
The Dense layers equal the 4x4 ConvTranspose/Conv at the ends of the PyTorch DCGAN example. With
resolution 64 and width 64 this is exactly that network (512-256-128-64 channels).
`dtype` is the dtype of the convolutions and matmuls (params stay float32, BatchNorm and LayerNorm
statistics are float32); G's images and D's logits (its last Dense) are float32 whatever it is.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.layers import Conv, ConvTranspose

INIT = nn.initializers.normal(0.02)


def _scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * nn.initializers.normal(1.0)(key, shape, dtype)


def dcgan_stages(resolution: int) -> tuple[int, int]:
    """(base size, number of x2 stages) with base * 2**stages == resolution; ValueError otherwise."""
    for base in (4, 7):
        stages = math.log2(resolution / base) if resolution >= base else -1
        if stages >= 1 and stages == int(stages):
            return base, int(stages)
    raise ValueError(
        f"DCGAN cannot produce {resolution}x{resolution} images: the resolution must be 4 * 2**k or "
        f"7 * 2**k (8, 14, 16, 28, 32, 56, 64, 128, ...)")


def normalization(kind: str, train: bool, momentum: float, axis_name: str | None,
                  dtype: Any = jnp.float32) -> Any:
    """The norm layer named in the config, or identity for 'none'; its output in `dtype` (flax
    computes the statistics in float32 at least)."""
    if kind == "batch":
        return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-5,
                            scale_init=_scale_init, axis_name=axis_name, dtype=dtype)
    if kind == "layer":
        return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=(-3, -2, -1), dtype=dtype)
    if kind == "none":
        return lambda x: x
    raise ValueError(f"unknown norm {kind!r}; use batch, layer or none")


class DCGANGenerator(nn.Module):
    """z (B, latent) (labels ignored: unconditional) -> images (B, resolution, resolution, channels) in [-1, 1]."""

    resolution: int
    channels: int
    width: int = 64
    norm: str = "batch"
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, labels=None, train: bool = True):
        base, stages = dcgan_stages(self.resolution)
        features = self.width * 2 ** (stages - 1)
        use_bias = self.norm == "none"
        norm = lambda: normalization(self.norm, train, self.bn_momentum, self.bn_axis_name,
                                     self.dtype)
        x = nn.Dense(base * base * features, use_bias=use_bias, kernel_init=INIT,
                     dtype=self.dtype)(z)
        x = nn.relu(norm()(x.reshape(z.shape[0], base, base, features)))
        for _ in range(stages - 1):
            features //= 2
            x = ConvTranspose(features, use_bias=use_bias, kernel_init=INIT, dtype=self.dtype)(x)
            x = nn.relu(norm()(x))
        x = ConvTranspose(self.channels, use_bias=True, kernel_init=INIT, dtype=self.dtype)(x)
        return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
    """images (B, H, W, C) in [-1, 1] (labels ignored: unconditional) -> logits (B,)."""

    resolution: int
    width: int = 64
    norm: str = "batch"
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, train: bool = True):
        _, stages = dcgan_stages(self.resolution)
        pad = ((1, 1), (1, 1))
        x = nn.leaky_relu(Conv(self.width, (4, 4), (2, 2), pad, kernel_init=INIT,
                               dtype=self.dtype)(x), 0.2)
        features = self.width
        for _ in range(stages - 1):
            features *= 2
            x = Conv(features, (4, 4), (2, 2), pad, use_bias=self.norm == "none",
                     kernel_init=INIT, dtype=self.dtype)(x)
            x = normalization(self.norm, train, self.bn_momentum, self.bn_axis_name,
                              self.dtype)(x)
            x = nn.leaky_relu(x, 0.2)
        x = nn.Dense(1, kernel_init=INIT, dtype=jnp.float32)(x.reshape(x.shape[0], -1))
        return x[:, 0]
