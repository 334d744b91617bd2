"""StyleGAN2's task (Karras et al. 2020; NVlabs stylegan2-ada-pytorch `training/loss.py`):
per-example noise keys and style mixing around the networks of `gan_jax.models.stylegan2`."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from gan_jax.models.stylegan2 import build_models
from gan_jax.tasks.image_gan import ImageGANTask, apply_module, fold_keys, task_options

Array = jax.Array

# Purposes of per-example random streams (fold_keys), beside image_gan.LATENT & co.
NOISE, MIX_LATENT, MIX_COIN, MIX_CUTOFF = 100, 101, 102, 103


@dataclasses.dataclass(frozen=True, kw_only=True)
class StyleGAN2Task(ImageGANTask):
    """ImageGANTask whose generator gets per-example noise keys and, in training, style mixing.

    style_mixing_prob: each training fake (for D and for G) takes, with this probability, its
      styles from layer c on from a second latent, c uniform in [1, num_ws) and drawn per example
      (NVlabs draws one c per batch). truncation in `sample`/`generate` is StyleGAN's psi in w
      space, not a truncated z (`latents` ignores it). Lazy R1 is the base task's (`r1_every`,
      `r1_mode`). The D step writes back G's 'w_avg', as NVlabs' Dmain phase updates it, and the
      EMA generator takes G's w_avg as it is (training_loop.py copies G's buffers into G_ema).
    """

    style_mixing_prob: float
    d_step_g_collections: tuple[str, ...] = ("w_avg",)
    ema_collections: str = "copy"

    def latents(self, keys: Array, truncation: float | None = None) -> Array:
        """(B, latent_dim) standard normal z; truncation (psi) acts on w in `generate` instead."""
        return super().latents(keys)

    def mixing_cutoffs(self, keys: Array) -> Array:
        """(B,) int32: the first layer styled by the mixing latent; num_ws (no mixing) with
        probability 1 - style_mixing_prob."""
        n = self.generator.num_ws
        mix = jax.vmap(jax.random.uniform)(fold_keys(keys, MIX_COIN)) < self.style_mixing_prob
        cutoff = jax.vmap(lambda k: jax.random.randint(k, (), 1, n))(
            fold_keys(keys, MIX_CUTOFF))
        return jnp.where(mix, cutoff, n).astype(jnp.int32)

    def generate(self, g_params, g_state, z: Array, labels: Array | None, keys: Array, step: Array,
                 train: bool = False, truncation: float | None = None):
        """(images, new G collections); noise from `keys`, style mixing when training."""
        kwargs = dict(noise_keys=fold_keys(keys, NOISE), truncation_psi=truncation)
        if train and self.style_mixing_prob:
            kwargs.update(mix_z=self.latents(fold_keys(keys, MIX_LATENT)),
                          mix_cutoff=self.mixing_cutoffs(keys))
        return apply_module(self.generator, g_params, g_state, train, z, labels, **kwargs)




def build_task(config: ml_collections.ConfigDict) -> StyleGAN2Task:
    """The StyleGAN2 task: `loss.*` (StyleGAN2: non_saturating, r1_weight gamma, r1_every 16) and
    `stylegan2.style_mixing_prob`."""
    return StyleGAN2Task(*build_models(config), **task_options(config),
                         style_mixing_prob=config.stylegan2.style_mixing_prob)
