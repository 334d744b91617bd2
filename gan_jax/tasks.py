"""Tasks: what a GAN trains. A task owns the networks and supplies the discriminator and generator
losses; the train step only differentiates, averages and applies updates.

A task's losses are pure functions of (params, mutable collections, a batch slice, per-example
keys) and return (loss, (new mutable collections, metrics)). Multi-network models (CycleGAN's two
generators and two discriminators) are tasks whose params are dicts of networks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import losses
from gan_jax.models import build_models

Array = jax.Array
Batch = dict[str, Array]
Variables = dict[str, Any]

# Purposes of per-example random streams: fold_in(example_key, PURPOSE).
LATENT, INTERPOLATION = 0, 1


def _apply(module: nn.Module, params, collections, x, train: bool):
    """module(x) -> (out, new collections); collections are updated only when training."""
    variables = {"params": params, **collections}
    if train and collections:
        out, new = module.apply(variables, x, train=True, mutable=list(collections))
        return out, dict(new)
    return module.apply(variables, x, train=train), collections


@dataclasses.dataclass(frozen=True)
class ImageGANTask:
    """Unconditional image GAN: G(z) -> images in [-1, 1], D(images) -> logits."""

    generator: nn.Module
    discriminator: nn.Module
    loss: losses.GANLoss
    latent_dim: int
    gp_weight: float = 0.0
    r1_weight: float = 0.0

    def init(self, key: Array, image_shape: tuple[int, int, int]) -> tuple[Variables, Variables]:
        """Variables {'params': ..., other collections} of G and D."""
        kg, kd = jax.random.split(key)
        g_vars = self.generator.init(kg, jnp.zeros((2, self.latent_dim)), train=False)
        d_vars = self.discriminator.init(kd, jnp.zeros((2, *image_shape)), train=False)
        return dict(g_vars), dict(d_vars)

    def latents(self, keys: Array) -> Array:
        """(B, latent_dim) standard normal latents, one per example key."""
        return jax.vmap(lambda k: jax.random.normal(
            jax.random.fold_in(k, LATENT), (self.latent_dim,)))(keys)

    def generate(self, g_params, g_state, z: Array, train: bool = False):
        return _apply(self.generator, g_params, g_state, z, train)

    def critic(self, d_params, d_state, images: Array, train: bool = True):
        return _apply(self.discriminator, d_params, d_state, images, train)

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch: Batch, keys: Array):
        """D loss on a real batch and fakes from per-example keys; G's collections are not updated."""
        real = batch["image"]
        fake, _ = self.generate(g_params, g_state, self.latents(keys), train=True)
        fake = jax.lax.stop_gradient(fake)
        real_logits, new_state = self.critic(d_params, d_state, real)
        fake_logits, new_state = self.critic(d_params, new_state, fake)
        loss = self.loss.discriminator(real_logits, fake_logits)
        metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}
        critic_fn = lambda x: self.critic(d_params, d_state, x)[0]
        if self.gp_weight:
            alpha = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, INTERPOLATION)))(keys)
            metrics["gp"] = losses.gradient_penalty(critic_fn, real, fake, alpha)
            loss = loss + self.gp_weight * metrics["gp"]
        if self.r1_weight:
            metrics["r1"] = losses.r1_penalty(critic_fn, real)
            loss = loss + 0.5 * self.r1_weight * metrics["r1"]
        return loss, (new_state, metrics)

    def generator_loss(self, g_params, g_state, d_params, d_state, batch: Batch, keys: Array):
        """G loss on fakes from per-example keys; D's collections are not updated."""
        fake, new_state = self.generate(g_params, g_state, self.latents(keys), train=True)
        fake_logits, _ = self.critic(d_params, d_state, fake)
        loss = self.loss.generator(fake_logits)
        return loss, (new_state, {"g_loss": loss})


def build_task(config: ml_collections.ConfigDict) -> ImageGANTask:
    """The task a config describes."""
    generator, discriminator = build_models(config)
    return ImageGANTask(generator, discriminator, losses.LOSSES[config.loss.name],
                        config.model.latent_dim, config.loss.gp_weight, config.loss.r1_weight)
