"""Inpainting (DeepFill v2, Yu et al. 2019): fill the masked regions of images, as
open-mmlab/mmagic `configs/_base_/models/base_deepfillv2.py` and
`mmagic/models/base_models/two_stage.py` (`TwoStageInpaintor`) train JiahuiYu/generative_inpainting's
networks (`gan_jax/models/inpainting.py`).

Data: {'image'} batches of any noise-to-image source (digits, fashion_mnist, tfds:, folder:);
each example's mask (1 = missing) is drawn from its key (`gan_jax.masks`, stream MASK) with
`inpaint.mask_kinds` and `inpaint.area_range`. G sees concat(x * (1 - m), 1, m) and returns one
output per stage (coarse, refined; the encoder-decoder one); the result is the last stage
composited, x * (1 - m) + G(x) * m, so known pixels are kept exactly.

Losses (base_deepfillv2.py): for every stage, L1 over the hole and L1 over the valid pixels of the
raw stage output against the image (weights `hole_weight`, `valid_weight`: 1.0 each; mmagic's
`L1Loss` with the mask as weight: sum |y - x| * w / sum w over pixels and channels of the batch,
`mask_reduce_loss`), plus `gan_weight` (loss_gan loss_weight 0.1) times the hinge G loss
-mean D(concat(composited, m)). D: hinge on the patch logits, mean relu(1 - D(real)) +
mean relu(1 + D(fake)) (mmagic's GANLoss 'hinge', weight 1 for D), real = concat(x, m), fake =
concat(composited result, m) (disc_input_with_mask=True), in one D call on both as the
TensorFlow reference's `build_graph_with_losses` (one spectral-norm power iteration per D step).
The L1 sums are normalised by the global batch's pixel count (gathered over devices), so the
loss is the reference's whatever the device count.

Deviation, named: the D step and the G step each draw their own masks (their own key streams)
and run G each; the reference runs G once per iteration for both updates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import losses, masks, parallel
from gan_jax.models import build_models
from gan_jax.tasks.image_gan import apply_module, fold_keys
from gan_jax.tasks.image_to_image import ImageToImageTask

Array = jax.Array
Batch = dict[str, Array]
Variables = dict[str, Any]

MASK = 100  # per-example stream purpose of the masks (image_gan's are < 100)


def masked_l1(output: Array, target: Array, weight: Array) -> Array:
    """sum |output - target| * weight / sum(weight over pixels and channels) of the global batch,
    on this device's share (its mean over devices is the global value); call inside
    `parallel.data_parallel`. weight (B, H, W, 1)."""
    channels = output.shape[-1]
    local = jnp.sum(jnp.abs(output - target) * weight)
    counts = parallel.gather_examples(jnp.sum(weight, axis=(1, 2, 3)) * channels)
    devices = counts.shape[0] // weight.shape[0]
    return local * devices / (jnp.sum(counts) + 1e-12)


def composite(images: Array, output: Array, mask: Array) -> Array:
    """images * (1 - mask) + output * mask: known pixels exactly as they were."""
    return jnp.where(mask > 0, output, images)


@dataclasses.dataclass(frozen=True)
class InpaintingTask(ImageToImageTask):
    """Inpainting on {'image'} float [-1, 1] batches (B, H, W, C) (see the module docstring)."""

    generator: nn.Module
    discriminator: nn.Module
    loss: losses.GANLoss
    mask_kinds: tuple[str, ...] = masks.MASK_KINDS
    area_range: tuple[float, float] = (0.0, 1.0)
    gan_weight: float = 0.1
    hole_weight: float = 1.0
    valid_weight: float = 1.0

    pair_data = False  # reads a noise-to-image source ({'image'}), not pairs
    directions = ("fill",)
    d_step_writes = ("d_state",)  # D's spectral-norm vectors; G has no collections
    g_step_writes = ()

    def init(self, key: Array, image_shape: tuple[int, int, int]) -> tuple[Variables, Variables]:
        """Variables of G (on images and masks) and of D (on concat(image, mask))."""
        kg, kd = jax.random.split(key)
        x, m = jnp.zeros((2, *image_shape)), jnp.zeros((2, *image_shape[:2], 1))
        g_vars = self.generator.init(kg, x, m)
        d_vars = self.discriminator.init(kd, jnp.concatenate([x, m], -1), train=False)
        return dict(g_vars), dict(d_vars)

    def masks(self, keys: Array, image_shape: tuple[int, ...]) -> Array:
        """float32 (B, H, W, 1) masks, mask i from keys[i]'s MASK stream."""
        return masks.draw_masks(fold_keys(keys, MASK), image_shape[0], image_shape[1],
                                self.mask_kinds, self.area_range)

    def stages(self, g_params, images: Array, mask: Array) -> tuple[Array, ...]:
        """G's raw output of every stage (the last is the result), float [-1, 1]."""
        return self.generator.apply({"params": g_params}, images, mask)

    def fill(self, g_params, g_state, images: Array, mask: Array) -> Array:
        """images with the mask's pixels (1 = missing) filled by G; the rest bit for bit; pure."""
        return composite(images, self.stages(g_params, images, mask)[-1], mask)

    def masked_inputs(self, images: Array, keys: Array) -> Array:
        """What G is shown: images with the keys' masks blanked (0, mid-grey)."""
        return images * (1.0 - self.masks(keys, images.shape[1:3]))

    def critic(self, d_params, d_state, images: Array, mask: Array, train: bool):
        """(patch logits of D on concat(images, mask), D's collections)."""
        return apply_module(self.discriminator, d_params, d_state, train,
                            jnp.concatenate([images, mask], -1))

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch: Batch, keys: Array,
                           step: Array, task_state: dict[str, Any]):
        """Hinge loss of D on reals and composited fills (one D call on both); writes D's state."""
        real = batch["image"]
        mask = self.masks(keys, real.shape[1:3])
        fake = jax.lax.stop_gradient(self.fill(g_params, g_state, real, mask))
        logits, d_state = self.critic(d_params, d_state, jnp.concatenate([real, fake]),
                                      jnp.concatenate([mask, mask]), train=True)
        real_logits, fake_logits = jnp.split(logits, 2)
        loss = self.loss.discriminator(real_logits, fake_logits)
        metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits),
                   "d_fake": jnp.mean(fake_logits)}
        return loss, ({"d_state": d_state}, metrics)

    def generator_loss(self, g_params, g_state, d_params, d_state, batch: Batch, keys: Array,
                       step: Array, task_state: dict[str, Any]):
        """sum over stages of hole and valid L1 + gan_weight * GAN loss of D on the composite."""
        real = batch["image"]
        mask = self.masks(keys, real.shape[1:3])
        stages = self.stages(g_params, real, mask)
        hole = sum(masked_l1(s, real, mask) for s in stages)
        valid = sum(masked_l1(s, real, 1.0 - mask) for s in stages)
        fake = composite(real, stages[-1], mask)
        gan = self.loss.generator(self.critic(d_params, d_state, fake, mask, train=False)[0])
        loss = self.hole_weight * hole + self.valid_weight * valid + self.gan_weight * gan
        metrics = {"g_loss": loss, "g_gan": gan, "l1_hole": hole, "l1_valid": valid}
        return loss, ({}, metrics)

    def translate(self, g_params, g_state, images: Array, keys: Array, direction: str = "fill"
                  ) -> Array:
        """`fill` with masks drawn from the per-example keys (B,): float [-1, 1] (B, H, W, C) ->
        the same; pure."""
        if direction not in self.directions:
            raise ValueError(f"inpainting translates {', '.join(self.directions)} only, got "
                             f"direction {direction!r}")
        return self.fill(g_params, g_state, images, self.masks(keys, images.shape[1:3]))


def build_task(config: ml_collections.ConfigDict) -> InpaintingTask:
    """The inpainting task: `model.*` networks, `inpaint.*` masks and loss weights."""
    generator, discriminator = build_models(config)
    c = config.inpaint
    return InpaintingTask(generator, discriminator, losses.LOSSES[config.loss.name],
                          tuple(c.mask_kinds), tuple(c.area_range), c.gan_weight, c.hole_weight,
                          c.valid_weight)
