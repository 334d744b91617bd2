"""Progressive growing's task (Karras et al. 2018; tkarras/progressive_growing_of_gans `train.py`,
`loss.py`): the schedule step -> (level, alpha), reals faded like the fakes, the drift term and the
optimizer resets, around the networks of `gan_jax.models.progressive`."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import losses
from gan_jax.models.layers import downsample, upsample
from gan_jax.models.progressive import build_models, level_resolutions
from gan_jax.tasks.image_gan import ImageGANTask, apply_module, task_options

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Schedule:
    """step -> (level, alpha): which resolution trains at a step, and the fade-in weight."""

    num_levels: int
    fade_steps: int
    stable_steps: int

    def __call__(self, step: Array) -> tuple[Array, Array]:
        """(level int32 in [0, num_levels), alpha float32 in [0, 1]) at train step `step`.

        Pure in the (traced) step: level 0 for steps [0, stable); level l >= 1 starts at
        stable + (l - 1) * (fade + stable), with alpha = (step - start) / fade for `fade` steps,
        then 1. The last level keeps alpha = 1 forever.
        """
        step = jnp.asarray(step, jnp.int32)
        phase = self.fade_steps + self.stable_steps
        since = step - self.stable_steps  # steps since level 1 started (< 0: level 0)
        level = jnp.where(since < 0, 0, 1 + jnp.maximum(since, 0) // phase)
        level = jnp.minimum(level, self.num_levels - 1).astype(jnp.int32)
        into = since - (level - 1) * phase  # steps into the current level (level >= 1)
        alpha = (jnp.clip(into.astype(jnp.float32) / self.fade_steps, 0.0, 1.0)
                 if self.fade_steps else jnp.float32(1.0))
        return level, jnp.where(level == 0, jnp.float32(1.0), alpha)

    def segment(self, step: Array) -> Array:
        """int32 stretch of steps over which PGGAN's lod keeps its floor and ceil: 0 at level 0,
        2l - 1 while level l fades in, 2l once it is stable."""
        level, alpha = self(step)
        return 2 * level - (alpha < 1.0).astype(jnp.int32)

    def phase_start(self, level: int) -> int:
        """First step of `level` (its fade-in, or step 0 for level 0)."""
        return 0 if level == 0 else self.stable_steps + (level - 1) * (self.fade_steps
                                                                       + self.stable_steps)


def fade_images(images: Array, level: Array, alpha: Array, resolutions: tuple[int, ...]) -> Array:
    """Real images as D sees them at (level, alpha): pooled to the level's resolution, lerped with
    their x2 down-up-sampled version by alpha during a fade-in, upsampled back (nearest)."""
    full = images.shape[1]

    def at_level(l: int):
        def branch(x, alpha):
            x = downsample(x, full // resolutions[l])
            if l > 0:
                x = alpha * x + (1.0 - alpha) * upsample(downsample(x, 2), 2)
            return upsample(x, full // resolutions[l])
        return branch

    return jax.lax.switch(level, [at_level(l) for l in range(len(resolutions))], images, alpha)


@dataclasses.dataclass(frozen=True)
class WithDrift:
    """A discriminator loss plus PGGAN's drift term epsilon * E[D(x)^2] on the real logits."""

    loss: Callable[[Array, Array], Array]
    epsilon: float

    def __call__(self, real: Array, fake: Array) -> Array:
        return self.loss(real, fake) + self.epsilon * jnp.mean(jnp.square(real.astype(jnp.float32)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProgressiveTask(ImageGANTask):
    """An ImageGANTask whose networks run at `schedule(step)`; D also sees the reals faded there.

    Metrics add 'level' and 'alpha' of the step. The optimizers restart from a fresh state
    whenever the step enters a new `Schedule.segment` (a fade-in starts or ends), as
    tkarras/progressive_growing_of_gans train.py with reset_opt_for_new_lod=True (floor or ceil
    of lod changed); the count restarts too, so would a learning-rate schedule.
    """

    schedule: Schedule
    resolutions: tuple[int, ...]

    def init(self, key: Array, image_shape: tuple[int, int, int]):
        kg, kd = jax.random.split(key)
        g_vars = self.generator.init(kg, jnp.zeros((2, self.latent_dim)), None, train=False,
                                     level=0, alpha=1.0)
        d_vars = self.discriminator.init(kd, jnp.zeros((2, *image_shape)), None, train=False,
                                         level=0, alpha=1.0)
        return dict(g_vars), dict(d_vars)

    def resets_optimizers(self, step: Array) -> Array:
        step = jnp.asarray(step, jnp.int32)
        return (step > 0) & (self.schedule.segment(step) != self.schedule.segment(step - 1))

    def generate(self, g_params, g_state, z, labels, keys, step, train=False, truncation=None):
        level, alpha = self.schedule(step)
        return apply_module(self.generator, g_params, g_state, train, z, labels, level=level,
                            alpha=alpha)

    def critic(self, d_params, d_state, images, labels, step, train=True):
        level, alpha = self.schedule(step)
        return apply_module(self.discriminator, d_params, d_state, train, images, labels,
                            level=level, alpha=alpha)

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch, keys, step,
                           task_state):
        level, alpha = self.schedule(step)
        batch = dict(batch, image=fade_images(batch["image"], level, alpha, self.resolutions))
        loss, (writes, metrics) = super().discriminator_loss(
            d_params, d_state, g_params, g_state, batch, keys, step, task_state)
        metrics = {**metrics, "level": level.astype(jnp.float32), "alpha": alpha}
        return loss, (writes, metrics)

    def r1_loss(self, d_params, d_state, batch, keys, step, task_state):
        level, alpha = self.schedule(step)
        batch = dict(batch, image=fade_images(batch["image"], level, alpha, self.resolutions))
        return super().r1_loss(d_params, d_state, batch, keys, step, task_state)


def build_schedule(config: ml_collections.ConfigDict) -> Schedule:
    p = config.progressive
    levels = level_resolutions(config.data.resolution, p.start_resolution)
    return Schedule(len(levels), p.fade_steps, p.stable_steps)


def build_task(config: ml_collections.ConfigDict) -> ProgressiveTask:
    """The progressive task: `loss.name` (PGGAN: wgan with gp_weight 10) plus the drift term
    `progressive.drift_weight`."""
    p = config.progressive
    options = task_options(config)
    base = options.pop("loss")
    loss = losses.GANLoss(WithDrift(base.discriminator, p.drift_weight), base.generator)
    return ProgressiveTask(
        *build_models(config), loss, **options, schedule=build_schedule(config),
        resolutions=level_resolutions(config.data.resolution, p.start_resolution))
