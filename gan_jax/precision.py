"""Mixed precision: the compute dtypes of `train.compute_dtype`, and float16's dynamic loss scaling.

Params and optimizer states stay float32 whatever the compute dtype; the models run their
convolutions and matmuls in it (Flax `dtype=`, `param_dtype=float32`). With float16 each optimizer
is wrapped by `dynamic_loss_scale`: the train step multiplies the loss by the scale kept in the
optimizer's state (`scaled_loss`) and the wrapper divides the gradients by it, skips the update
when any of them is not finite and halves the scale, and doubles it after `GROWTH_INTERVAL` finite
updates in a row: PyTorch's `torch.amp.GradScaler` defaults (init 2**16, factors 2 and 0.5,
interval 2000). NVlabs' stylegan2-ada-pytorch uses no loss scaling: it runs float16 in the 4
highest-resolution blocks only (`num_fp16_res`), clamps conv outputs to +-256 (`conv_clamp`) and
replaces non-finite gradients by nan_to_num (training/training_loop.py); none of that is done here.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")  # the values of train.compute_dtype
INIT_SCALE = 2.0 ** 16
GROWTH_INTERVAL = 2000  # finite updates in a row before the scale doubles


class LossScaleState(NamedTuple):
    """The wrapped optimizer's state, the loss scale (float32) and the finite updates in a row."""

    inner: Any
    scale: jax.Array
    good_steps: jax.Array


def dynamic_loss_scale(tx: optax.GradientTransformation, init_scale: float = INIT_SCALE,
                       growth_interval: int = GROWTH_INTERVAL) -> optax.GradientTransformation:
    """`tx` on gradients of a loss multiplied by `state.scale`: they are divided by it first; when
    any is not finite the update is zero, `tx`'s state is kept and the scale halves; after
    `growth_interval` finite updates in a row it doubles."""

    def init(params):
        return LossScaleState(tx.init(params), jnp.float32(init_scale), jnp.int32(0))

    def update(grads, state, params=None):
        grads = jax.tree.map(lambda g: g / state.scale.astype(g.dtype), grads)
        finite = all_finite(grads)
        updates, inner = tx.update(grads, state.inner, params)
        updates, inner = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                      (updates, inner), (jax.tree.map(jnp.zeros_like, updates),
                                                         state.inner))
        good = jnp.where(finite, state.good_steps + 1, 0)
        grow = good >= growth_interval
        scale = jnp.where(finite, jnp.where(grow, 2.0 * state.scale, state.scale),
                          0.5 * state.scale)
        return updates, LossScaleState(inner, scale, jnp.where(grow, 0, good))

    return optax.GradientTransformation(init, update)


def optimizer(tx: optax.GradientTransformation, compute_dtype: str) -> optax.GradientTransformation:
    """`tx` with dynamic loss scaling for float16, else `tx` itself."""
    return dynamic_loss_scale(tx) if compute_dtype == "float16" else tx


def scaled_loss(loss_fn: Callable, opt_state) -> Callable:
    """`loss_fn` (returning (loss, aux)) with its loss multiplied by `opt_state`'s loss scale;
    `loss_fn` itself when the optimizer does not scale."""
    if not isinstance(opt_state, LossScaleState):
        return loss_fn

    def scaled(*args):
        loss, aux = loss_fn(*args)
        return loss * opt_state.scale, aux

    return scaled


def loss_scale_metrics(g_opt_state, d_opt_state) -> dict[str, jax.Array]:
    """{'g_loss_scale', 'd_loss_scale'} of the optimizers that scale their losses ({} for none)."""
    return {f"{name}_loss_scale": state.scale
            for name, state in (("g", g_opt_state), ("d", d_opt_state))
            if isinstance(state, LossScaleState)}


def all_finite(tree) -> jax.Array:
    """True when every float leaf of `tree` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)
