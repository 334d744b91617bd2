"""StyleGAN2's task (Karras et al. 2020; NVlabs stylegan2-ada-pytorch `training/loss.py`):
per-example noise keys and style mixing around the networks of `gan_jax.models.stylegan2`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import parallel
from gan_jax.models.stylegan2 import build_models
from gan_jax.tasks.image_gan import ImageGANTask, apply_module, fold_keys, task_options

Array = jax.Array

# Purposes of per-example random streams (fold_keys), beside image_gan.LATENT & co.
NOISE, MIX_LATENT, MIX_COIN, MIX_CUTOFF, PL_NOISE = 100, 101, 102, 103, 104


@dataclasses.dataclass(frozen=True, kw_only=True)
class StyleGAN2Task(ImageGANTask):
    """ImageGANTask whose generator gets per-example noise keys and, in training, style mixing.

    style_mixing_prob: each training fake (for D and for G) takes, with this probability, its
      styles from layer c on from a second latent, c uniform in [1, num_ws) and drawn per example
      (NVlabs draws one c per batch). truncation in `sample`/`generate` is StyleGAN's psi in w
      space, not a truncated z (`latents` ignores it). Lazy R1 is the base task's (`r1_every`,
      `r1_mode`). G's phases run before D's (`g_first`), as NVlabs' Gmain, Greg, Dmain, Dreg
      (training_loop.py). w_avg moves in every training-mode mapping call, as NVlabs' (Gmain's,
      Greg's, then Dmain's; not the style-mixing latents'): the G step, the path-length step and
      the D step each write back G's 'w_avg'; the EMA generator takes G's w_avg as it is
      (training_loop.py copies G's buffers into G_ema).
    pl_weight, pl_every, pl_decay, pl_batch_shrink: path length regularisation (`g_reg_loss`, its
      own G update on steps divisible by pl_every; NVlabs' Gpl phase); the running mean of the
      path lengths is `task_state['pl_mean']`. pl_weight 0 disables it.
    """

    style_mixing_prob: float
    pl_weight: float = 0.0
    pl_every: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    d_step_g_collections: tuple[str, ...] = ("w_avg",)
    ema_collections: str = "copy"
    g_first = True

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

    @property
    def g_reg_every(self) -> int:
        """Steps between path-length updates of G (0: none)."""
        return self.pl_every if self.pl_weight else 0

    g_reg_writes = ("task_state/pl_mean", "g_state/w_avg")

    def init_task_state(self, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        """The base task's state, with 'pl_mean' (0, as NVlabs) when path length is used."""
        state = super().init_task_state(image_shape)
        return {**state, "pl_mean": jnp.zeros((), jnp.float32)} if self.pl_weight else state

    def path_lengths(self, g_params, g_state, keys: Array) -> tuple[Array, dict[str, Any]]:
        """((B,) |J_w^T y|, new G collections): per example, the root mean over layers of the
        squared gradient of sum(G(w) * y) w.r.t. that layer's w, y ~ N(0, 1) / sqrt(H W) from the
        keys (loss.py Gpl). Style mixing as in training; the mapping runs in training mode, so
        w_avg moves by these examples' w, as NVlabs' Gpl run_G."""
        z, labels = self.latents(keys), self.labels(keys)
        mix = {}
        if self.style_mixing_prob:
            mix = dict(mix_z=self.latents(fold_keys(keys, MIX_LATENT)),
                       mix_cutoff=self.mixing_cutoffs(keys))
        ws, g_state = apply_module(self.generator, g_params, g_state, True, z, labels,
                                   method="styles", **mix)
        variables = {"params": g_params, **g_state}
        noise_keys = fold_keys(keys, NOISE)

        def projected(ws):
            images = self.generator.apply(variables, ws, noise_keys, method="synthesize")
            h, w = images.shape[1:3]
            y = jax.vmap(lambda k: jax.random.normal(k, images.shape[1:]))(
                fold_keys(keys, PL_NOISE)) / math.sqrt(h * w)
            return jnp.sum(images * y)

        grads = jax.grad(projected)(ws)
        return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1)), g_state

    def g_reg_loss(self, g_params, g_state, keys: Array, step: Array,
                   task_state: dict[str, Any]):
        """pl_every * pl_weight * mean (|J_w^T y| - a)^2 on the first 1/pl_batch_shrink of the
        examples, a = the running mean moved by pl_decay towards this step's mean length (its
        mean over devices; NVlabs keeps one per GPU); writes a to task_state['pl_mean'] and the
        moved w_avg to g_state['w_avg']."""
        keys = keys[:max(1, keys.shape[0] // self.pl_batch_shrink)]
        lengths, g_state = self.path_lengths(g_params, g_state, keys)
        batch_mean = parallel.mean_over_devices(jnp.mean(lengths))
        pl_mean = task_state["pl_mean"] + self.pl_decay * (batch_mean - task_state["pl_mean"])
        penalty = jnp.mean(jnp.square(lengths - pl_mean))
        writes = {"task_state/pl_mean": jax.lax.stop_gradient(pl_mean),
                  "g_state/w_avg": g_state["w_avg"]}
        return self.pl_every * self.pl_weight * penalty, (writes, {"pl": penalty})




def build_task(config: ml_collections.ConfigDict) -> StyleGAN2Task:
    """The StyleGAN2 task: `loss.*` (StyleGAN2: non_saturating, r1_weight gamma, r1_every 16,
    pl_weight 2 every pl_every 4) and `stylegan2.style_mixing_prob`."""
    c = config.loss
    return StyleGAN2Task(*build_models(config), **task_options(config),
                         style_mixing_prob=config.stylegan2.style_mixing_prob,
                         pl_weight=c.pl_weight, pl_every=c.pl_every, pl_decay=c.pl_decay,
                         pl_batch_shrink=c.pl_batch_shrink)
