"""Optimizers from config (gan_jax/optim.py)."""

import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import optim
from gan_jax.configs import base


def _rmsprop_config(**kwargs):
    c = base.optimizer(0.01)
    c.name = "rmsprop"
    c.update(kwargs)
    return c


def test_rmsprop_torch_style_matches_a_hand_computed_update():
    # torch.optim.RMSprop(alpha=0.99, eps=1e-8): v = a v + (1 - a) g^2; p -= lr g / (sqrt(v) + eps)
    tx = optim.make_optimizer(_rmsprop_config(decay=0.99, eps=0.1, eps_in_sqrt=False))
    params = jnp.array([1.0, -2.0])
    grads = [np.array([0.5, -1.0]), np.array([2.0, 3.0])]
    state = tx.init(params)
    v, expected = np.zeros(2), np.array([1.0, -2.0])
    for g in grads:
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, params)
        params = optax.apply_updates(params, updates)
        v = 0.99 * v + 0.01 * g ** 2
        expected = expected - 0.01 * g / (np.sqrt(v) + 0.1)
    np.testing.assert_allclose(params, expected, rtol=1e-6)


def test_rmsprop_eps_in_sqrt_is_optax_placement():
    tx = optim.make_optimizer(_rmsprop_config(decay=0.9, eps=0.1, eps_in_sqrt=True))
    updates, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
    np.testing.assert_allclose(updates, [-0.01 * 2.0 / np.sqrt(0.1 * 4.0 + 0.1)], rtol=1e-6)
