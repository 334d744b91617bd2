"""Fully connected GAN (Goodfellow et al. 2014 style) for small images."""

from __future__ import annotations

from typing import Sequence

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

    @nn.compact
    def __call__(self, z, labels=None, train: bool = True):
        x = z
        for dim in self.hidden_dims:
            x = nn.Dense(dim)(x)
            if self.norm == "batch":
                x = normalization("batch", train, self.bn_momentum, self.bn_axis_name)(x)
            x = nn.relu(x)
        x = nn.Dense(self.resolution * self.resolution * self.channels)(x)
        return jnp.tanh(x).reshape(z.shape[0], self.resolution, self.resolution, self.channels)


class MLPDiscriminator(nn.Module):
    """images (B, H, W, C) -> logits (B,)."""

    hidden_dims: Sequence[int] = (512, 512)

    @nn.compact
    def __call__(self, x, labels=None, train: bool = True):
        x = x.reshape(x.shape[0], -1)
        for dim in self.hidden_dims:
            x = nn.leaky_relu(nn.Dense(dim)(x), 0.2)
        return nn.Dense(1)(x)[:, 0]
