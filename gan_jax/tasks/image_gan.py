"""The image GAN task: what a noise-to-image GAN trains. A task owns the networks and supplies the
discriminator and generator losses; the train step only differentiates, averages and applies
updates, and writes back exactly the state each step declares.

A task's losses are pure functions of (params, mutable collections, a batch slice, per-example
keys, the train step, the task's own state) and return (loss, (writes, metrics)): `writes` maps
each name the task declares for that step (`d_step_writes`, `g_step_writes`) to its new value. A
name is a state field ('d_state', 'g_state', 'task_state': the whole field) or 'field/collection'
(one collection of it, e.g. 'g_state/w_avg'). The train step averages written 'g_state' and
'd_state' values over devices; 'task_state' (image pools, ...) is computed identically on every
device and written as it is. Multi-network models (CycleGAN's two generators and two
discriminators) are tasks whose params are dicts of networks; model families with their own
training tricks (StyleGAN2's lazy R1 and style mixing, progressive growing's fade-in) subclass
`ImageGANTask` and override what differs.

Module call convention: generator(z, labels, train=...) -> images (B, H, W, C) in [-1, 1];
discriminator(images, labels, train=...) -> logits (B,). `labels` is None for unconditional tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import ada, augment, losses, parallel
from gan_jax.models import build_models

Array = jax.Array
Batch = dict[str, Array]
Variables = dict[str, Any]
Writes = dict[str, Any]  # write-back name ('d_state', 'g_state/w_avg', ...) -> new value
Augment = Callable[[Array, Array], Array]  # (images, per-example keys) -> images

# Purposes of per-example random streams: fold_in(example_key, PURPOSE). Subclasses use >= 100.
LATENT, INTERPOLATION, LABEL, AUGMENT_REAL, AUGMENT_FAKE = 0, 1, 2, 3, 4


def fold_keys(keys: Array, purpose: int) -> Array:
    """Per-example keys (B,) -> their sub-stream `purpose`."""
    return jax.vmap(lambda k: jax.random.fold_in(k, purpose))(keys)


def apply_module(module: nn.Module, params, collections, train: bool, *args, **kwargs):
    """module(*args) -> (out, new collections); collections are updated only when training."""
    variables = {"params": params, **collections}
    if train and collections:
        out, new = module.apply(variables, *args, train=True, mutable=list(collections), **kwargs)
        return out, dict(new)
    return module.apply(variables, *args, train=train, **kwargs), collections


@dataclasses.dataclass(frozen=True)
class ImageGANTask:
    """Image GAN, unconditional or class-conditional: G(z, y) -> images in [-1, 1], D(x, y) -> logits.

    num_classes: 0 for an unconditional GAN; otherwise fakes get labels drawn uniformly from the
      per-example keys and reals bring theirs (batch['label']).
    r1_every: lazy R1 (StyleGAN2): the penalty is computed only on steps divisible by it, with its
      weight multiplied by it; other steps do not pay for the double backward pass.
    r1_mode: with r1_every > 1, 'separate': `r1_loss` is its own D update on those steps, after the
      main one (NVlabs' Dreg phase; the train step applies it); 'folded': R1 is added to the
      discriminator loss of those steps.
    d_step_g_collections: G's mutable collections that the D step's training-mode G calls update
      and write back (StyleGAN2: 'w_avg', as NVlabs' mapping in the Dmain phase); the others are
      left as they were. The D step writes D's collections and these (`d_step_writes`); the G
      step writes G's collections (`g_step_writes`); neither writes D's collections from the G
      step's D call.
    ema_collections: how the EMA generator's own collections follow G's: 'average' (with the
      params' decay, as BigGAN-PyTorch's `ema` averages every state_dict entry) or 'copy' (NVlabs'
      StyleGAN2 copies G's buffers, w_avg included, into G_ema at each step).
    augment: applied to every image D sees (DiffAugment), reals and fakes from separate streams.
    ada: adaptive discriminator augmentation instead (ada.py's bgc pipeline at the probability p
      its controller keeps in `task_state['ada']`; the D step writes it back, from the signs of
      D's logits on augmented reals summed over all devices). p and r_t are in the D metrics.
    ortho_weight: BigGAN's orthogonal regularisation of G's weights (losses.orthogonal_regularization).
    """

    generator: nn.Module
    discriminator: nn.Module
    loss: losses.GANLoss
    latent_dim: int
    num_classes: int = 0
    gp_weight: float = 0.0
    r1_weight: float = 0.0
    r1_every: int = 1
    r1_mode: str = "folded"
    augment: Augment | None = None
    ada: ada.AdaController | None = None
    ortho_weight: float = 0.0
    d_step_g_collections: tuple[str, ...] = ()
    ema_collections: str = "average"

    @property
    def separate_r1(self) -> bool:
        """True when R1 is its own D update (`r1_loss`) rather than part of `discriminator_loss`."""
        return bool(self.r1_weight) and self.r1_every > 1 and self.r1_mode == "separate"

    image_to_image = False  # noise-to-image; image-to-image tasks also have `translate`
    g_reg_every = 0  # steps between G regulariser updates (`g_reg_loss`; StyleGAN2's path length)
    g_reg_writes = ()  # what `g_reg_loss` writes back
    g_first = False  # D's phases before G's (train_step); StyleGAN2: G's first, as NVlabs
    directions = ()  # translation directions of image-to-image tasks ("a2b", "b2a")
    pair_data = False  # image-to-image tasks: True when they read pairs, not images

    @property
    def d_step_writes(self) -> tuple[str, ...]:
        """What `discriminator_loss` writes back: D's collections, G's named in
        `d_step_g_collections`, and ADA's state when used."""
        return ("d_state", *(f"g_state/{name}" for name in self.d_step_g_collections),
                *(("task_state/ada",) if self.ada else ()))

    @property
    def g_step_writes(self) -> tuple[str, ...]:
        """What `generator_loss` writes back: G's collections."""
        return ("g_state",)

    def init_task_state(self, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        """The state this task owns beside the networks ({}: none; {'ada': ...} with ADA)."""
        return {"ada": self.ada.init_state()} if self.ada else {}

    def resets_optimizers(self, step: Array) -> Array:
        """bool: whether step `step` starts G's and D's optimizers from a fresh state (never here;
        progressive growing at a new level)."""
        return jnp.zeros((), bool)

    def init(self, key: Array, image_shape: tuple[int, int, int]) -> tuple[Variables, Variables]:
        """Variables {'params': ..., other collections} of G and D."""
        kg, kd = jax.random.split(key)
        labels = jnp.zeros((2,), jnp.int32) if self.num_classes else None
        g_vars = self.generator.init(kg, jnp.zeros((2, self.latent_dim)), labels, train=False)
        d_vars = self.discriminator.init(kd, jnp.zeros((2, *image_shape)), labels, train=False)
        return dict(g_vars), dict(d_vars)

    def latents(self, keys: Array, truncation: float | None = None) -> Array:
        """(B, latent_dim) standard normal latents, one per example key; with `truncation` t, each
        coordinate is drawn from the normal truncated to [-t, t] (BigGAN's truncation trick)."""
        keys = fold_keys(keys, LATENT)
        if truncation is None:
            return jax.vmap(lambda k: jax.random.normal(k, (self.latent_dim,)))(keys)
        return jax.vmap(lambda k: jax.random.truncated_normal(
            k, -truncation, truncation, (self.latent_dim,)))(keys)

    def labels(self, keys: Array) -> Array | None:
        """(B,) int32 class labels drawn uniformly, one per example key; None when unconditional."""
        if not self.num_classes:
            return None
        return jax.vmap(lambda k: jax.random.randint(k, (), 0, self.num_classes))(
            fold_keys(keys, LABEL))

    def generate(self, g_params, g_state, z: Array, labels: Array | None, keys: Array, step: Array,
                 train: bool = False, truncation: float | None = None):
        """(images, new G collections) for latents z (truncation is already in z here)."""
        return apply_module(self.generator, g_params, g_state, train, z, labels)

    def critic(self, d_params, d_state, images: Array, labels: Array | None, step: Array,
               train: bool = True):
        """(logits (B,), new D collections)."""
        return apply_module(self.discriminator, d_params, d_state, train, images, labels)

    def augmented(self, images: Array, keys: Array, purpose: int,
                  task_state: dict[str, Any]) -> Array:
        """`images` through the task's augmentation: ADA at the state's p, DiffAugment, or none."""
        if self.ada:
            return ada.ada_augment(images, fold_keys(keys, purpose), task_state["ada"]["p"])
        return images if self.augment is None else self.augment(images, fold_keys(keys, purpose))

    def real_labels(self, batch: Batch) -> Array | None:
        return batch["label"] if self.num_classes else None

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch: Batch, keys: Array,
                           step: Array, task_state: dict[str, Any]):
        """D loss on a real batch and fakes from per-example keys; writes D's collections and G's
        named in `d_step_g_collections`."""
        real, real_labels = batch["image"], self.real_labels(batch)
        fake_labels = self.labels(keys)
        fake, new_g_state = self.generate(g_params, g_state, self.latents(keys), fake_labels, keys,
                                          step, train=True)
        fake = jax.lax.stop_gradient(fake)
        real_logits, new_state = self.critic(
            d_params, d_state, self.augmented(real, keys, AUGMENT_REAL, task_state), real_labels, step)
        fake_logits, new_state = self.critic(
            d_params, new_state, self.augmented(fake, keys, AUGMENT_FAKE, task_state), fake_labels, step)
        loss = self.loss.discriminator(real_logits, fake_logits)
        metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}
        critic_fn = lambda x: self.critic(d_params, d_state, self.augmented(x, keys, AUGMENT_REAL, task_state),
                                          real_labels, step)[0]
        if self.gp_weight:
            alpha = jax.vmap(jax.random.uniform)(fold_keys(keys, INTERPOLATION))
            metrics["gp"] = losses.gradient_penalty(critic_fn, real, fake, alpha)
            loss = loss + self.gp_weight * metrics["gp"]
        if self.r1_weight and not self.separate_r1:
            if self.r1_every > 1:
                # R1 runs on steps s with s % r1_every == 0, step 0 included (NVlabs'
                # training_loop.py: batch_idx % interval == 0). zeros_like keeps the real
                # batch's device-variance inside shard_map.
                metrics["r1"] = jax.lax.cond(step % self.r1_every == 0,
                                             lambda x: losses.r1_penalty(critic_fn, x),
                                             lambda x: jnp.zeros_like(x, shape=()), real)
            else:
                metrics["r1"] = losses.r1_penalty(critic_fn, real)
            loss = loss + 0.5 * self.r1_weight * self.r1_every * metrics["r1"]
        writes = {"d_state": new_state, **{f"g_state/{name}": new_g_state[name]
                                           for name in self.d_step_g_collections}}
        if self.ada:
            signs = jax.lax.stop_gradient(jnp.sign(real_logits))
            totals = parallel.sum_over_devices((jnp.sum(signs), jnp.float32(signs.shape[0])))
            writes["task_state/ada"] = self.ada.update(task_state["ada"], *totals)
            metrics.update(ada_p=writes["task_state/ada"]["p"],
                           ada_rt=writes["task_state/ada"]["rt"])
        return loss, (writes, metrics)

    def r1_loss(self, d_params, d_state, batch: Batch, keys: Array, step: Array,
                task_state: dict[str, Any]):
        """(gamma / 2 * r1_every * R1 on the real batch, {'r1': R1}): the separate lazy-R1 update
        (stylegan2-ada-pytorch training/loss.py, phase Dreg); D's collections are not updated."""
        real, labels = batch["image"], self.real_labels(batch)
        critic_fn = lambda x: self.critic(d_params, d_state, self.augmented(x, keys, AUGMENT_REAL, task_state),
                                          labels, step)[0]
        r1 = losses.r1_penalty(critic_fn, real)
        return 0.5 * self.r1_weight * self.r1_every * r1, {"r1": r1}

    def generator_loss(self, g_params, g_state, d_params, d_state, batch: Batch, keys: Array,
                       step: Array, task_state: dict[str, Any]):
        """G loss on fakes from per-example keys; writes G's collections (D's new ones from this
        step's D call are discarded: D is only judged here)."""
        labels = self.labels(keys)
        fake, new_state = self.generate(g_params, g_state, self.latents(keys), labels, keys, step,
                                        train=True)
        fake_logits, _ = self.critic(d_params, d_state, self.augmented(fake, keys, AUGMENT_FAKE, task_state),
                                     labels, step)
        loss = self.loss.generator(fake_logits)
        metrics = {"g_loss": loss}
        if self.ortho_weight:
            metrics["ortho"] = losses.orthogonal_regularization(g_params)
            loss = loss + self.ortho_weight * metrics["ortho"]
        return loss, ({"g_state": new_state}, metrics)

    def sample(self, g_params, g_state, keys: Array, step: Array, labels: Array | None = None,
               truncation: float | None = None, z: Array | None = None) -> Array:
        """Eval-mode images for per-example keys; labels drawn from the keys when None
        (conditional tasks); z drawn from the keys (with `truncation`) when None."""
        if z is None:
            z = self.latents(keys, truncation)
        if self.num_classes and labels is None:
            labels = self.labels(keys)
        return self.generate(g_params, g_state, z, labels, keys, step, train=False,
                             truncation=truncation)[0]


def task_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The ImageGANTask fields every task reads from `loss.*`, `model.*` and `augment.*`
    (subclasses' builders add their own)."""
    c = config.loss
    return dict(loss=losses.LOSSES[c.name], latent_dim=config.model.latent_dim,
                num_classes=config.model.num_classes, gp_weight=c.gp_weight,
                r1_weight=c.r1_weight, r1_every=c.r1_every, r1_mode=c.r1_mode,
                ortho_weight=c.ortho_weight,
                augment=augment.make_augment(augment.parse_policy(config.augment.policy)),
                ada=build_ada(config.augment))


def build_ada(c: ml_collections.ConfigDict) -> ada.AdaController | None:
    """augment.kind 'ada': p from augment.p, adjusted towards augment.ada_target; 'fixed': p stays
    augment.p; 'diffaugment': None."""
    if c.kind == "diffaugment":
        return None
    return ada.AdaController(target=c.ada_target if c.kind == "ada" else None,
                             interval=c.ada_interval, kimg=c.ada_kimg, initial_p=c.p)


def build_task(config: ml_collections.ConfigDict) -> ImageGANTask:
    """The ImageGANTask of the (generator, discriminator) pair `config.model.name` names."""
    generator, discriminator = build_models(config)
    return ImageGANTask(generator, discriminator, **task_options(config))
