"""Fully connected GAN (Goodfellow et al. 2014 style) for small images; hidden layers in `dtype`,
G's images and D's logits (its last Dense) float32."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.dcgan import normalization


class MLPGenerator(nn.Module):
    """z (B, latent) -> images (B, resolution, resolution, channels) in [-1, 1]."""

    resolution: int
    channels: int
    hidden_dims: Sequence[int] = (512, 512)
    norm: str = "none"
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, labels=None, train: bool = True):
        x = z
        for dim in self.hidden_dims:
            x = nn.Dense(dim, dtype=self.dtype)(x)
            if self.norm == "batch":
                x = normalization("batch", train, self.bn_momentum, self.bn_axis_name,
                                  self.dtype)(x)
            x = nn.relu(x)
        x = nn.Dense(self.resolution * self.resolution * self.channels, dtype=self.dtype)(x)
        images = jnp.tanh(x.astype(jnp.float32))
        return images.reshape(z.shape[0], self.resolution, self.resolution, self.channels)


class MLPDiscriminator(nn.Module):
    """images (B, H, W, C) -> logits (B,)."""

    hidden_dims: Sequence[int] = (512, 512)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, train: bool = True):
        x = x.reshape(x.shape[0], -1)
        for dim in self.hidden_dims:
            x = nn.leaky_relu(nn.Dense(dim, dtype=self.dtype)(x), 0.2)
        return nn.Dense(1, dtype=jnp.float32)(x)[:, 0]
