"""GAN losses on discriminator logits, and gradient regularisers.

Every loss is a pure function of logits (shape (B,) or (B, 1)) returning a scalar mean over the
batch. `LOSSES` is the one registry the config's `loss.name` is looked up in.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
CriticFn = Callable[[Array], Array]


def _mean(x: Array) -> Array:
    return jnp.mean(x.astype(jnp.float32))


# --- discriminator losses: (real_logits, fake_logits) -> scalar -------------------------------

def bce_discriminator_loss(real: Array, fake: Array) -> Array:
    """-log sigmoid(real) - log(1 - sigmoid(fake)) (Goodfellow et al. 2014)."""
    return _mean(jax.nn.softplus(-real)) + _mean(jax.nn.softplus(fake))


def lsgan_discriminator_loss(real: Array, fake: Array) -> Array:
    """0.5 (D(x) - 1)^2 + 0.5 D(G(z))^2 (Mao et al. 2017, a=0, b=1)."""
    return 0.5 * _mean(jnp.square(real - 1.0)) + 0.5 * _mean(jnp.square(fake))


def wasserstein_discriminator_loss(real: Array, fake: Array) -> Array:
    """E[D(G(z))] - E[D(x)] (Arjovsky et al. 2017)."""
    return _mean(fake) - _mean(real)


def hinge_discriminator_loss(real: Array, fake: Array) -> Array:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return _mean(jax.nn.relu(1.0 - real)) + _mean(jax.nn.relu(1.0 + fake))


# --- generator losses: fake_logits -> scalar --------------------------------------------------

def minimax_generator_loss(fake: Array) -> Array:
    """E[log(1 - sigmoid(D(G(z))))], the saturating original objective."""
    return -_mean(jax.nn.softplus(fake))


def non_saturating_generator_loss(fake: Array) -> Array:
    """-E[log sigmoid(D(G(z)))]."""
    return _mean(jax.nn.softplus(-fake))


def lsgan_generator_loss(fake: Array) -> Array:
    """0.5 (D(G(z)) - 1)^2 (c=1)."""
    return 0.5 * _mean(jnp.square(fake - 1.0))


def wasserstein_generator_loss(fake: Array) -> Array:
    """-E[D(G(z))]; also the generator loss of hinge GANs."""
    return -_mean(fake)


@dataclasses.dataclass(frozen=True)
class GANLoss:
    """A pair of discriminator and generator losses on logits."""

    discriminator: Callable[[Array, Array], Array]
    generator: Callable[[Array], Array]


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(bce_discriminator_loss, minimax_generator_loss),
    "non_saturating": GANLoss(bce_discriminator_loss, non_saturating_generator_loss),
    "lsgan": GANLoss(lsgan_discriminator_loss, lsgan_generator_loss),
    "wgan": GANLoss(wasserstein_discriminator_loss, wasserstein_generator_loss),
    "hinge": GANLoss(hinge_discriminator_loss, wasserstein_generator_loss),
}


# --- regularisers -----------------------------------------------------------------------------

def _per_example_input_grads(critic: CriticFn, images: Array) -> Array:
    """d critic(x)_i / d x_i for each example; exact when the critic has no batch-coupled layers."""
    return jax.grad(lambda x: jnp.sum(critic(x)))(images)


def _squared_norms(grads: Array) -> Array:
    return jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1)


def gradient_penalty(critic: CriticFn, real: Array, fake: Array, alpha: Array) -> Array:
    """WGAN-GP term E[(||grad D(x_hat)||_2 - 1)^2], x_hat = alpha x + (1 - alpha) G(z) (Gulrajani et al. 2017).

    alpha: (B,) uniform in [0, 1], one per example.
    """
    alpha = alpha.reshape((-1,) + (1,) * (real.ndim - 1)).astype(real.dtype)
    mixed = alpha * real + (1.0 - alpha) * fake
    norms = jnp.sqrt(_squared_norms(_per_example_input_grads(critic, mixed)) + 1e-12)
    return _mean(jnp.square(norms - 1.0))


def r1_penalty(critic: CriticFn, real: Array) -> Array:
    """R1 term E[||grad D(x)||^2] on real data (Mescheder et al. 2018); multiply by gamma/2."""
    return _mean(_squared_norms(_per_example_input_grads(critic, real)))


def orthogonal_regularization(params) -> Array:
    """BigGAN's 0.5 * sum_W ||W W^T * (1 - I)||_F^2 over every 'kernel' leaf, W = (out, fan_in).

    Its gradient, 2 (W W^T * (1 - I)) W, is the term BigGAN-PyTorch adds to each weight's gradient
    (times beta); class embeddings and biases are not regularised.
    """
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if getattr(path[-1], "key", None) != "kernel" or leaf.ndim < 2:
            continue
        w = leaf.reshape(-1, leaf.shape[-1]).T.astype(jnp.float32)
        gram = w @ w.T
        total = total + 0.5 * jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0]))))
    return total
