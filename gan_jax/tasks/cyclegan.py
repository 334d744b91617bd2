"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"), as junyanz/pytorch-CycleGAN-and-pix2pix `models/cycle_gan_model.py`,
`util/image_pool.py` and `options/train_options.py`.

Networks (`gan_jax/models/pix2pix.py`; every pair shares one architecture): g_params {'g_ab',
'g_ba'}, two ResNet generators A -> B and B -> A; d_params {'d_a', 'd_b'}, two PatchGAN
discriminators, d_a judging A images (real A against g_ba's fakes), d_b judging B images. In the
reference's names G_A = g_ab, G_B = g_ba, D_A = d_b (it judges G_A's output) and D_B = d_a.
Instance norm and no dropout (the reference's CycleGAN defaults), so the networks have no
collections: g_state and d_state are {}.

Losses (the reference's `gan_mode` 'lsgan': the mean squared error of every patch logit against
1 for real, 0 for fake; `L1Loss`: the mean absolute error):
  D: 0.5 * (MSE(d_a(a), 1) + MSE(d_a(pool_a(g_ba(b))), 0)) + the same for d_b on B (each D's loss
     halved, `backward_D_basic`; one optimizer over both Ds as `optimizer_D`).
  G: MSE(d_b(g_ab(a)), 1) + MSE(d_a(g_ba(b)), 1)
     + cycle_weight * (L1(g_ba(g_ab(a)), a) + L1(g_ab(g_ba(b)), b))   (lambda_A = lambda_B = 10)
     + identity_weight * cycle_weight * (L1(g_ab(b), b) + L1(g_ba(a), a))   (lambda_identity 0.5)
Adam(2e-4, 0.5, 0.999) for both, constant lr, then linear decay to 0 (the configs).

Data (`data/base_dataset.py` get_transform, preprocess 'resize_and_crop'): train images are loaded
at data.load_size (286) and randomly cropped to data.resolution (256), and flipped horizontally
with p = 1/2 unless data.flip is False (`--no_flip`), A and B independently (`domains`), each
example's crop and flip from its own key (`data.image_pairs.crop_flip`, pix2pix's mechanism).

History pools (`util/image_pool.py`, pool_size 50): D sees each fake through its domain's pool
(`query_pool`). The pools are the task's state, `state.task_state` {'pool_a', 'pool_b'}, written
back by the D step: checkpointed and restored with the run (the reference starts them empty on
every resume). There is one pool per direction for the whole run, not one per device: each D step
gathers the global batch's fakes and keys from every device, runs them through the pool in global
example order, and gives each device its own rows back, so every device holds the same pools and
the result does not depend on the device count.

Deviations from the reference, named:
* Order: the train step updates D before G; the reference updates G first, then D on the pooled
  fakes of the same forward pass. Both D's fakes and G's losses here use G's params before this
  step's update, as the reference's, but G's loss sees D after its update (the reference's sees D
  before it), and the D step computes its fakes with a forward pass of its own.
* Randomness: the pool's coin and slot are drawn from each example's key (stream POOL_A/POOL_B),
  not from Python's global `random`, so runs are reproducible and resumable.
* With train.n_critic > 1 every D update queries the pools with its own batch's fakes.
* As pix2pix here, the D step and the G step draw their crops and flips from their own keys (the
  train step's D and G streams), so the G update sees other crops and flips of the same images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import parallel
from gan_jax.data.image_pairs import crop_flip
from gan_jax.models import build_models
from gan_jax.tasks.image_gan import fold_keys
from gan_jax.tasks.image_to_image import ImageToImageTask

Array = jax.Array
Batch = dict[str, Array]
Pool = dict[str, Array]  # {'images': (pool_size, H, W, C) float32, 'count': int32 images stored}

POOL_A, POOL_B = 100, 101  # per-example stream purposes of the two pools (image_gan's are < 100)
CROP_A, CROP_B = 102, 103  # ... and of the crop and flip of each domain's images
NETWORKS = {"a2b": "g_ab", "b2a": "g_ba"}  # translation direction -> generator


def empty_pool(size: int, image_shape: tuple[int, int, int]) -> Pool:
    """A history pool of `size` images of `image_shape`, none stored yet."""
    return {"images": jnp.zeros((size, *image_shape), jnp.float32),
            "count": jnp.zeros((), jnp.int32)}


def query_pool(pool: Pool, images: Array, keys: Array) -> tuple[Pool, Array]:
    """`ImagePool.query` (util/image_pool.py) as a pure function: (new pool, images for D).

    images (B, H, W, C) are taken in order, image i with keys[i]: while the pool is not full it is
    stored in the next free slot and returned; once full, with probability 1/2 (uniform draw >
    0.5, as the reference) a uniformly drawn slot's image is returned and replaced by image i,
    otherwise image i is returned. A pool of size 0 returns the images.
    """
    size = pool["images"].shape[0]
    if size == 0:
        return pool, images

    def one(pool, inputs):
        image, key = inputs
        stored, count = pool["images"], pool["count"]
        full = count >= size
        swap = full & (jax.random.uniform(jax.random.fold_in(key, 0)) > 0.5)
        slot = jnp.where(full, jax.random.randint(jax.random.fold_in(key, 1), (), 0, size), count)
        out = jnp.where(swap, stored[slot], image)
        stored = stored.at[slot].set(jnp.where(full & ~swap, stored[slot], image))
        return {"images": stored, "count": count + (~full).astype(jnp.int32)}, out

    return jax.lax.scan(one, pool, (images.astype(jnp.float32), keys))


def _mse(x: Array, target: float) -> Array:
    return jnp.mean(jnp.square(x.astype(jnp.float32) - target))


def _l1(x: Array, y: Array) -> Array:
    return jnp.mean(jnp.abs(x - y))


@dataclasses.dataclass(frozen=True)
class CycleGANTask(ImageToImageTask):
    """CycleGAN on unpaired {'a', 'b'} float [-1, 1] batches (B, H, W, C) (see the module doc).

    generator, discriminator: the architecture of g_ab and g_ba, of d_a and d_b; crop_size: the
    networks' image side (data.resolution) that train images are cropped to, then flipped with
    `flip` (data.flip); None: the batches as they are, neither cropped nor flipped.
    """

    generator: nn.Module
    discriminator: nn.Module
    cycle_weight: float = 10.0     # lambda_A = lambda_B (options: --lambda_A, --lambda_B)
    identity_weight: float = 0.5   # lambda_identity: the identity loss weighs this * cycle_weight
    pool_size: int = 50            # --pool_size
    crop_size: int | None = None
    flip: bool = False

    # D's update before G's (the base's g_first; the reference: G first)
    directions = ("a2b", "b2a")
    pair_data = True  # reads a pair source ({'a', 'b'})
    d_step_writes = ("task_state",)  # the pools; the networks have no collections
    g_step_writes = ()

    def init(self, key: Array, image_shape: tuple[int, int, int]):
        """({'params': {'g_ab', 'g_ba'}}, {'params': {'d_a', 'd_b'}})."""
        k_ab, k_ba, k_a, k_b = jax.random.split(key, 4)
        x = jnp.zeros((2, *image_shape))
        g = {"g_ab": self.generator.init(k_ab, x, train=False)["params"],
             "g_ba": self.generator.init(k_ba, x, train=False)["params"]}
        d = {"d_a": self.discriminator.init(k_a, x, train=False)["params"],
             "d_b": self.discriminator.init(k_b, x, train=False)["params"]}
        return {"params": g}, {"params": d}

    def init_task_state(self, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        """{'pool_a': fakes of A (g_ba's), 'pool_b': fakes of B (g_ab's)}, empty."""
        return {"pool_a": empty_pool(self.pool_size, image_shape),
                "pool_b": empty_pool(self.pool_size, image_shape)}

    def _g(self, g_params, network: str, x: Array, train: bool = True) -> Array:
        return self.generator.apply({"params": g_params[network]}, x, train=train)

    def _d(self, d_params, network: str, x: Array) -> Array:
        return self.discriminator.apply({"params": d_params[network]}, x, train=True)

    def _pooled(self, pool: Pool, fakes: Array, keys: Array) -> tuple[Pool, Array]:
        """The global batch's fakes through `pool` in global example order; this device's rows."""
        pool, seen = query_pool(pool, parallel.gather_examples(fakes),
                                parallel.gather_examples(keys))
        return pool, parallel.local_examples(seen, fakes.shape[0])

    def domains(self, batch: Batch, keys: Array) -> tuple[Array, Array]:
        """(A, B) of the batch, each cropped to crop_size and (flip) flipped with draws of its own
        (streams CROP_A, CROP_B of the per-example keys): the domains are unpaired."""
        if self.crop_size is None:
            return batch["a"], batch["b"]
        (a,) = crop_flip((batch["a"],), fold_keys(keys, CROP_A), self.crop_size, self.flip)
        (b,) = crop_flip((batch["b"],), fold_keys(keys, CROP_B), self.crop_size, self.flip)
        return a, b

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch: Batch, keys: Array,
                           step: Array, task_state: dict[str, Any]):
        """Both Ds' halved LSGAN losses on real images and pooled fakes; writes the pools."""
        a, b = self.domains(batch, keys)
        fake_a = jax.lax.stop_gradient(self._g(g_params, "g_ba", b))
        fake_b = jax.lax.stop_gradient(self._g(g_params, "g_ab", a))
        pool_a, fake_a = self._pooled(task_state["pool_a"], fake_a, fold_keys(keys, POOL_A))
        pool_b, fake_b = self._pooled(task_state["pool_b"], fake_b, fold_keys(keys, POOL_B))
        loss_a = 0.5 * (_mse(self._d(d_params, "d_a", a), 1.0)
                        + _mse(self._d(d_params, "d_a", fake_a), 0.0))
        loss_b = 0.5 * (_mse(self._d(d_params, "d_b", b), 1.0)
                        + _mse(self._d(d_params, "d_b", fake_b), 0.0))
        loss = loss_a + loss_b
        writes = {"task_state": {**task_state, "pool_a": pool_a, "pool_b": pool_b}}
        return loss, (writes, {"d_loss": loss, "d_a": loss_a, "d_b": loss_b})

    def generator_loss(self, g_params, g_state, d_params, d_state, batch: Batch, keys: Array,
                       step: Array, task_state: dict[str, Any]):
        """LSGAN + cycle_weight * cycle + identity_weight * cycle_weight * identity (module doc)."""
        a, b = self.domains(batch, keys)
        fake_b, fake_a = self._g(g_params, "g_ab", a), self._g(g_params, "g_ba", b)
        gan = (_mse(self._d(d_params, "d_b", fake_b), 1.0)
               + _mse(self._d(d_params, "d_a", fake_a), 1.0))
        cycle = (_l1(self._g(g_params, "g_ba", fake_b), a)
                 + _l1(self._g(g_params, "g_ab", fake_a), b))
        loss = gan + self.cycle_weight * cycle
        metrics = {"g_gan": gan, "cycle": cycle}
        if self.identity_weight:  # the reference skips these passes when lambda_identity is 0
            identity = _l1(self._g(g_params, "g_ab", b), b) + _l1(self._g(g_params, "g_ba", a), a)
            loss = loss + self.identity_weight * self.cycle_weight * identity
            metrics["identity"] = identity
        return loss, ({}, {"g_loss": loss, **metrics})

    def translate(self, g_params, g_state, images: Array, keys: Array, direction: str = "a2b"
                  ) -> Array:
        """Eval-mode g_ab (a2b) or g_ba (b2a): float [-1, 1] (B, H, W, C) -> the same; pure. The
        generators are deterministic: `keys` (B,) are accepted for the shared protocol."""
        return self._g(g_params, NETWORKS[direction], images, train=False)


def build_task(config: ml_collections.ConfigDict) -> CycleGANTask:
    """The CycleGAN task: `model.*` networks, `loss.cycle_weight`, `loss.identity_weight`,
    `loss.pool_size`, train images cropped from data.load_size to data.resolution, `data.flip`."""
    generator, discriminator = build_models(config)
    c, d = config.loss, config.data
    return CycleGANTask(generator, discriminator, c.cycle_weight, c.identity_weight, c.pool_size,
                        d.resolution, d.flip)
