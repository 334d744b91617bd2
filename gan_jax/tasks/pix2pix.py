"""pix2pix (Isola et al. 2017): paired image-to-image translation G(A) -> B with a conditional
PatchGAN, as junyanz/pytorch-CycleGAN-and-pix2pix `models/pix2pix_model.py`.

D sees concat(A, B) (real) and concat(A, G(A)) (fake); its loss is half the sum of the two GAN
terms (`backward_D`: (loss_D_fake + loss_D_real) * 0.5); G's loss is gan_weight times the GAN
term on concat(A, G(A)) plus l1_weight * mean|G(A) - B| (`backward_G`, lambda_L1 = 100; the
reference's GAN weight is 1; gan_weight 0 is Isola et al.'s "L1 only" ablation, D still trained
but unused by G). Images carry `loss.name`'s GAN loss; the reference's `gan_mode vanilla` (BCE
with logits, target 1 for G) is `non_saturating`. Both networks are `models/pix2pix.py`'s.

Randomness, all from the per-example keys: every batch is randomly cropped from the loaded size
(data.load_size) to data.resolution and flipped (data.flip), the same crop and flip on A and B
(`paired_crop_flip`; the reference's `resize_and_crop` and flip, data/base_dataset.py); G's
dropout masks of example i (the U-Net's middle levels, or every block of a ResNet generator, as
the reference's `--netG resnet_9blocks` without --no_dropout) are drawn from key i
(`models.pix2pix.Dropout`'s example keys). In
training G's batch norm uses the statistics of the device's batch (of the global batch with
model.cross_replica_bn), as the reference's; at the paper's test time (`translate` with
model.paper_test_time) each image is normalised with its own statistics, the reference's test
batch of 1, so an image's output depends on that image and its key alone.

Deviations from the reference, named:
* The reference computes G(A) once per iteration and uses it for the D update and then the G
  update. Here the D step and the G step run G each with their own keys (the train step's D and G
  streams), so the G update sees another crop, flip and dropout mask of the same pairs.
* D's batch-norm running averages (never used: D always runs with batch statistics in training
  and is not used after it) are updated by the D step's calls (fake, then real, as the
  reference), not by the G step's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import losses
from gan_jax.data.image_pairs import paired_crop_flip
from gan_jax.models import build_models
from gan_jax.tasks.image_gan import fold_keys
from gan_jax.tasks.image_to_image import ImageToImageTask

Array = jax.Array
Batch = dict[str, Array]
Variables = dict[str, Any]

CROP, DROPOUT = 100, 101  # per-example stream purposes (tasks.py: subclasses use >= 100)

@dataclasses.dataclass(frozen=True)
class Pix2PixTask(ImageToImageTask):
    """pix2pix on {'a', 'b'} float [-1, 1] batches (B, L, L, C), L >= crop_size: G(A) -> B.

    crop_size: the networks' image side (data.resolution); flip: random horizontal flips
    (data.flip).
    """

    generator: nn.Module
    discriminator: nn.Module
    loss: losses.GANLoss
    crop_size: int
    l1_weight: float = 100.0
    flip: bool = True
    gan_weight: float = 1.0

    # D's update before G's, as the reference (the base's g_first)
    directions = ("a2b",)
    pair_data = True  # reads a pair source ({'a', 'b'})
    d_step_writes = ("d_state",)  # D's batch-norm statistics; G's are left as they were
    g_step_writes = ("g_state",)  # G's batch-norm statistics

    def init(self, key: Array, image_shape: tuple[int, int, int]) -> tuple[Variables, Variables]:
        """Variables of G (A -> B) and of D (on concat(A, B)) for crop_size images."""
        kg, kd = jax.random.split(key)
        channels = image_shape[-1]
        x = jnp.zeros((2, self.crop_size, self.crop_size, channels))
        g_vars = self.generator.clone(paper_test_time=False).init(kg, x, train=False)
        d_vars = self.discriminator.init(kd, jnp.concatenate([x, x], -1), train=False)
        return dict(g_vars), dict(d_vars)

    def generate(self, g_params, g_state, a: Array, keys: Array, train: bool):
        """(G(a), G's collections); image i's dropout mask from keys[i]. train=True: batch norm
        with the batch's statistics, running averages updated; train=False: at
        `model.paper_test_time` the paper's test time (dropout on, each image normalised with its
        own statistics, updates discarded), else PyTorch's eval mode (no dropout, running
        averages)."""
        variables = {"params": g_params, **g_state}
        dropout_keys = fold_keys(keys, DROPOUT)
        kwargs = {"example_keys": dropout_keys} if getattr(self.generator, "dropout", False) else {}
        if train:
            if not g_state:
                return self.generator.apply(variables, a, train=True, **kwargs), g_state
            out, new = self.generator.apply(variables, a, train=True, mutable=list(g_state),
                                            **kwargs)
            return out, dict(new)
        if not (self.generator.paper_test_time and g_state):
            return self.generator.apply(variables, a, train=False, **kwargs), g_state

        def one(x, key):  # batch norm over this image alone: the reference's test batch of 1
            kw = {"example_keys": key[None]} if kwargs else {}
            out, _ = self.generator.apply(variables, x[None], train=False,
                                          mutable=list(g_state), **kw)
            return out[0]

        return jax.vmap(one)(a, dropout_keys), g_state

    def critic(self, d_params, d_state, a: Array, b: Array):
        """(patch logits of D on concat(a, b), D's collections), batch statistics (train mode)."""
        variables = {"params": d_params, **d_state}
        x = jnp.concatenate([a, b], axis=-1)
        if not d_state:
            return self.discriminator.apply(variables, x, train=True), d_state
        logits, new = self.discriminator.apply(variables, x, train=True, mutable=list(d_state))
        return logits, dict(new)

    def pairs(self, batch: Batch, keys: Array) -> tuple[Array, Array]:
        """(A, B) of the batch, cropped to crop_size and (flip) flipped, the same on A and B."""
        return paired_crop_flip(batch["a"], batch["b"], fold_keys(keys, CROP), self.crop_size,
                                self.flip)

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch: Batch, keys: Array,
                           step: Array, task_state: dict[str, Any]):
        """0.5 * (GAN loss of D on fake and real pairs); G's collections are not updated."""
        a, b = self.pairs(batch, keys)
        fake, _ = self.generate(g_params, g_state, a, keys, train=True)
        fake_logits, d_state = self.critic(d_params, d_state, a, jax.lax.stop_gradient(fake))
        real_logits, d_state = self.critic(d_params, d_state, a, b)
        loss = 0.5 * self.loss.discriminator(real_logits, fake_logits)
        metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits),
                   "d_fake": jnp.mean(fake_logits)}
        return loss, ({"d_state": d_state}, metrics)

    def generator_loss(self, g_params, g_state, d_params, d_state, batch: Batch, keys: Array,
                       step: Array, task_state: dict[str, Any]):
        """gan_weight * GAN loss of D on (A, G(A)) + l1_weight * mean|G(A) - B|; D's collections
        not updated."""
        a, b = self.pairs(batch, keys)
        fake, g_state = self.generate(g_params, g_state, a, keys, train=True)
        gan = self.loss.generator(self.critic(d_params, d_state, a, fake)[0])
        l1 = jnp.mean(jnp.abs(fake - b))
        loss = self.gan_weight * gan + self.l1_weight * l1
        return loss, ({"g_state": g_state}, {"g_loss": loss, "g_gan": gan, "l1": l1})

    def translate(self, g_params, g_state, images: Array, keys: Array, direction: str = "a2b"
                  ) -> Array:
        """Eval-mode G(images): float [-1, 1] (B, H, W, C) -> same; per-example keys (B,); pure."""
        if direction not in self.directions:
            raise ValueError(f"pix2pix translates {', '.join(self.directions)} only, got "
                             f"direction {direction!r}")
        return self.generate(g_params, g_state, images, keys, train=False)[0]


def build_task(config: ml_collections.ConfigDict) -> Pix2PixTask:
    """The pix2pix task of a config."""
    generator, discriminator = build_models(config)
    return Pix2PixTask(generator, discriminator, losses.LOSSES[config.loss.name],
                       config.data.resolution, config.loss.l1_weight, config.data.flip,
                       config.loss.gan_weight)
