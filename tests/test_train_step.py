"""The train step: it writes back exactly what a task declares, and its lazy G regulariser."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from gan_jax import optim, parallel
from gan_jax.configs import base
from gan_jax.state import GANState
from gan_jax.train_step import make_train_step, write_back

HELD = {"g_state": {"batch_stats": jnp.float32(1.0), "w_avg": jnp.float32(2.0)},
        "d_state": {"batch_stats": jnp.float32(3.0)}, "task_state": {"pool": jnp.int32(4)}}


def test_write_back_replaces_fields_and_single_collections():
    writes = {"d_state": {"batch_stats": jnp.float32(30.0)}, "g_state/w_avg": jnp.float32(20.0),
              "task_state": {"pool": jnp.int32(40)}}
    run = jax.shard_map(lambda: write_back(HELD, writes, ("d_state", "g_state/w_avg", "task_state"),
                                           "discriminator_loss"),
                        mesh=parallel.make_mesh(jax.devices()[:1]), in_specs=(), out_specs=P())
    held = jax.tree.map(lambda x: x.item(), run())
    assert held == {"g_state": {"batch_stats": 1.0, "w_avg": 20.0},
                    "d_state": {"batch_stats": 30.0}, "task_state": {"pool": 40}}


def test_an_undeclared_or_missing_write_is_refused_at_trace_time():
    with pytest.raises(ValueError, match=r"^task.generator_loss wrote back \['d_state', 'g_state'\] "
                                         r"but the task declares \['g_state'\]$"):
        write_back(HELD, {"g_state": {}, "d_state": {}}, ("g_state",), "generator_loss")
    with pytest.raises(ValueError, match=r"wrote back \[\] but the task declares \['task_state'\]"):
        write_back(HELD, {}, ("task_state",), "discriminator_loss")


class _QuadraticTask:
    """G's params w; G loss sum(w), its lazy regulariser sum(w^2) every 4 steps; D learns nothing."""

    separate_r1, r1_every, g_reg_every, ema_collections, g_first = False, 1, 4, "copy", False
    d_step_writes = g_step_writes = g_reg_writes = ()

    def resets_optimizers(self, step):
        return jnp.zeros((), bool)

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch, keys, step, task_state):
        return 0.0 * jnp.sum(d_params["v"]), ({}, {})

    def generator_loss(self, g_params, g_state, d_params, d_state, batch, keys, step, task_state):
        return jnp.sum(g_params["w"]), ({}, {})

    def g_reg_loss(self, g_params, g_state, keys, step, task_state):
        return jnp.sum(jnp.square(g_params["w"])), ({}, {"pl": jnp.float32(1.0)})


@pytest.mark.parametrize("step, reg", [(4, True), (3, False)])
def test_lazy_g_regulariser_is_a_second_update_of_nvlabs_lazy_adam(step, reg):
    """On steps s with s % 4 == 0 (NVlabs: batch_idx % G_reg_interval == 0), G takes its main
    Adam update, then one on the regulariser with the same optimizer, whose lr and betas a
    StyleGAN2 recipe scales by 4/5 (stylegan2-ada-pytorch training_loop.py: Gmain and Greg share
    one Adam(lr * mb_ratio, betas ** mb_ratio)); composed here from torch's Adam equations."""
    config = base.get_config()
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    g_tx, d_tx = optim.make_optimizer(config.optim.g), optax.sgd(0.0)
    w0 = jnp.array([0.5, -1.0, 2.0], jnp.float32)
    state = GANState(step=jnp.int32(step), key=jax.random.key(0), g_params={"w": w0},
                     d_params={"v": jnp.zeros(2)}, g_state={}, d_state={},
                     g_opt_state=g_tx.init({"w": w0}), d_opt_state=d_tx.init({"v": jnp.zeros(2)}),
                     ema_params=None, ema_state=None, skipped=jnp.int32(0), task_state={})
    batch = {"image": jnp.zeros((1, 4, 2, 2, 1), jnp.uint8)}
    step_fn = parallel.data_parallel(make_train_step(_QuadraticTask(), g_tx, d_tx, config),
                                     parallel.make_mesh(jax.devices()[:1]), donate_state=False)
    after, metrics = step_fn(state, batch)

    lr, b2, eps = 0.0025 * 4 / 5, 0.99 ** (4 / 5), 1e-8  # beta1 0 ** (4/5) = 0
    w, v = np.asarray(w0, np.float64), np.zeros(3)
    for t, grad in enumerate([lambda w: np.ones(3), lambda w: 2 * w][:2 if reg else 1], start=1):
        g = grad(w)
        v = b2 * v + (1 - b2) * g ** 2
        w = w - lr * g / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(after.g_params["w"], w, rtol=1e-6)
    assert int(after.g_opt_state[0].count) == (2 if reg else 1)
    assert float(metrics["pl"]) == (1.0 if reg else 0.0)


class _PhaseTask:
    """G's params w, D's v, both judged by the other (G loss w.v, D loss -w.v); lazy regularisers
    |w|^2 / 2 and |v|^2 / 2 every 4 steps: every phase's SGD step shows which params it saw."""

    separate_r1, r1_every, g_reg_every, ema_collections = True, 4, 4, "copy"
    d_step_writes = g_step_writes = g_reg_writes = ()

    def __init__(self, g_first):
        self.g_first = g_first

    def resets_optimizers(self, step):
        return jnp.zeros((), bool)

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch, keys, step,
                           task_state):
        return -jnp.dot(d_params["v"], g_params["w"]), ({}, {})

    def r1_loss(self, d_params, d_state, batch, keys, step, task_state):
        return 0.5 * jnp.sum(jnp.square(d_params["v"])), {"r1": jnp.float32(1.0)}

    def generator_loss(self, g_params, g_state, d_params, d_state, batch, keys, step, task_state):
        return jnp.dot(g_params["w"], d_params["v"]), ({}, {})

    def g_reg_loss(self, g_params, g_state, keys, step, task_state):
        return 0.5 * jnp.sum(jnp.square(g_params["w"])), ({}, {"pl": jnp.float32(1.0)})


@pytest.mark.parametrize("g_first", [True, False])
def test_phase_order_and_lazy_schedule_match_nvlabs(g_first):
    """Steps 0..7 against the phases applied by hand with SGD (lr 0.1): with task.g_first, as
    stylegan2-ada-pytorch training_loop.py, Gmain, Greg, Dmain (on the new G), Dreg; otherwise
    D's phases first and Gmain on the new D. Regularisers on s % 4 == 0 (steps 0 and 4)."""
    config = base.get_config()
    g_tx = d_tx = optax.sgd(0.1)
    w0, v0 = jnp.array([0.5, -1.0, 2.0]), jnp.array([1.0, 0.25, -0.5])
    state = GANState(step=jnp.int32(0), key=jax.random.key(0), g_params={"w": w0},
                     d_params={"v": v0}, g_state={}, d_state={},
                     g_opt_state=g_tx.init({"w": w0}), d_opt_state=d_tx.init({"v": v0}),
                     ema_params=None, ema_state=None, skipped=jnp.int32(0), task_state={})
    batch = {"image": jnp.zeros((1, 4, 2, 2, 1), jnp.uint8)}
    step_fn = parallel.data_parallel(make_train_step(_PhaseTask(g_first), g_tx, d_tx, config),
                                     parallel.make_mesh(jax.devices()[:1]), donate_state=False)
    w, v = np.asarray(w0, np.float64), np.asarray(v0, np.float64)
    regularised = []
    for s in range(8):
        state, metrics = step_fn(state, batch)
        regularised.append((float(metrics["pl"]), float(metrics["r1"])))
        reg = s % 4 == 0
        if not g_first:
            v = v + 0.1 * w                 # Dmain: d(-w.v)/dv = -w
            v = v - 0.1 * v if reg else v   # Dreg
        w = w - 0.1 * v                     # Gmain: d(w.v)/dw = v
        w = w - 0.1 * w if reg else w       # Greg
        if g_first:
            v = v + 0.1 * w                 # Dmain, on fakes of the G just updated
            v = v - 0.1 * v if reg else v   # Dreg
    np.testing.assert_allclose(state.g_params["w"], w, rtol=1e-6)
    np.testing.assert_allclose(state.d_params["v"], v, rtol=1e-6)
    assert regularised == [(1.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)] * 2
