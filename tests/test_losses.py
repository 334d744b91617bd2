"""Losses against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses

REAL = jnp.array([0.0, 2.0])
FAKE = jnp.array([0.0, -1.0])
LOG2 = math.log(2.0)


def softplus(x):
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("name, expected", [
    ("minimax", (LOG2 + softplus(-2)) / 2 + (LOG2 + softplus(-1)) / 2),
    ("non_saturating", (LOG2 + softplus(-2)) / 2 + (LOG2 + softplus(-1)) / 2),
    ("lsgan", 0.5 * (1 + 1) / 2 + 0.5 * (0 + 1) / 2),
    ("wgan", (0 - 1) / 2 - (0 + 2) / 2),
    ("hinge", (1 + 0) / 2 + (1 + 0) / 2),
])
def test_discriminator_losses(name, expected):
    assert float(losses.LOSSES[name].discriminator(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name, expected", [
    ("minimax", -(LOG2 + softplus(-1)) / 2),
    ("non_saturating", (LOG2 + softplus(1)) / 2),
    ("lsgan", 0.5 * (1 + 4) / 2),
    ("wgan", 0.5),
    ("hinge", 0.5),
])
def test_generator_losses(name, expected):
    assert float(losses.LOSSES[name].generator(FAKE)) == pytest.approx(expected, rel=1e-6)


def test_bce_loss_is_stable_for_large_logits():
    loss = losses.bce_discriminator_loss(jnp.array([100.0]), jnp.array([-100.0]))
    assert float(loss) == pytest.approx(2 * math.exp(-100), abs=1e-30)
    assert math.isfinite(float(losses.non_saturating_generator_loss(jnp.array([-1000.0]))))


def test_gradient_penalty_of_linear_critic_is_norm_minus_one_squared():
    w = jnp.array([3.0, 4.0])  # ||grad|| = 5 everywhere
    critic = lambda x: x @ w
    real, fake = jnp.ones((3, 2)), jnp.zeros((3, 2))
    gp = losses.gradient_penalty(critic, real, fake, jnp.array([0.1, 0.5, 0.9]))
    assert float(gp) == pytest.approx(16.0, rel=1e-6)


def test_gradient_penalty_interpolates_alpha_real_plus_one_minus_alpha_fake():
    critic = lambda x: 0.5 * jnp.sum(x ** 2, axis=1)  # grad = x_hat
    real = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    fake = jnp.zeros((2, 2))
    gp = losses.gradient_penalty(critic, real, fake, jnp.array([0.25, 0.5]))
    # x_hat = (0.25, 0) and (0.5, 0): ((0.25 - 1)^2 + (0.5 - 1)^2) / 2
    assert float(gp) == pytest.approx((0.5625 + 0.25) / 2, rel=1e-5)


def test_gradient_penalty_works_on_images():
    critic = lambda x: jnp.sum(x, axis=(1, 2, 3))  # grad = ones: norm sqrt(H*W*C)
    real = jnp.ones((2, 4, 4, 3))
    gp = losses.gradient_penalty(critic, real, -real, jnp.array([0.3, 0.7]))
    assert float(gp) == pytest.approx((math.sqrt(48) - 1) ** 2, rel=1e-5)


def test_r1_penalty_is_mean_squared_gradient_norm_on_real():
    critic = lambda x: 0.5 * jnp.sum(x ** 2, axis=1)  # grad = x
    real = jnp.array([[1.0, 2.0], [3.0, 0.0]])
    assert float(losses.r1_penalty(critic, real)) == pytest.approx((5 + 9) / 2, rel=1e-6)


def test_registry_names():
    assert sorted(losses.LOSSES) == ["hinge", "lsgan", "minimax", "non_saturating", "wgan"]
    assert np.isclose(float(losses.LOSSES["hinge"].generator(jnp.array([1.0, 3.0]))), -2.0)
