"""Fully connected GAN (Goodfellow et al. 2014 style) for small images; hidden layers in `dtype`,
G's images and D's logits (its last Dense) float32.

Class-conditional with `num_classes` > 0: G takes the one-hot label concatenated to z, as the
conditional MLP GAN of Mirza & Osindero 2014 (section 3.2) does, and D adds the projection term
<embed(y), h> on its last hidden layer (Miyato & Koyama 2018, eq. 3), as the ResNet D does. With
num_classes = 0 the parameters are exactly the unconditional model's."""

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
    num_classes: int = 0
    norm: str = "none"
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, labels=None, train: bool = True):
        x = z
        if self.num_classes:
            x = jnp.concatenate([z, nn.one_hot(labels, self.num_classes, dtype=z.dtype)], -1)
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
    """images (B, H, W, C), labels (B,) or None -> logits (B,)."""

    hidden_dims: Sequence[int] = (512, 512)
    num_classes: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, train: bool = True):
        x = x.reshape(x.shape[0], -1)
        for dim in self.hidden_dims:
            x = nn.leaky_relu(nn.Dense(dim, dtype=self.dtype)(x), 0.2)
        out = nn.Dense(1, dtype=jnp.float32)(x)[:, 0]
        if self.num_classes:
            embed = nn.Embed(self.num_classes, x.shape[-1], name="projection")(labels)
            out = out + jnp.sum(embed.astype(jnp.float32) * x.astype(jnp.float32), axis=-1)
        return out
