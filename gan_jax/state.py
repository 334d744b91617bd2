"""GANState: everything a training run carries from step to step, as one pytree."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class GANState:
    """Params, mutable collections and optimizer states of G and D, the EMA generator and the key.

    Params are arbitrary pytrees (a dict of networks fits multi-network models). `key` is the base
    typed PRNG key; every step derives its randomness from fold_in(key, step), so it never changes.
    `ema_params` and `ema_state` (the EMA generator's own collections: BatchNorm statistics,
    spectral-norm vectors) are None when the EMA generator is disabled. `skipped` counts the steps
    that were not applied because their losses or updated params were non-finite
    (train.on_nonfinite='skip'). `task_state` is a dict of the state the task owns beside the
    networks (CycleGAN's image pools; {} for most tasks, so it adds no checkpoint leaves); it is
    the same on every device, never averaged.
    """

    step: jax.Array
    key: jax.Array
    g_params: Any
    d_params: Any
    g_state: Any
    d_state: Any
    g_opt_state: Any
    d_opt_state: Any
    ema_params: Any
    ema_state: Any
    skipped: jax.Array
    task_state: dict[str, Any]

    @property
    def sampling_params(self) -> Any:
        """The generator params to sample with: EMA when present."""
        return self.g_params if self.ema_params is None else self.ema_params

    @property
    def sampling_state(self) -> Any:
        """The collections that belong to `sampling_params`: the EMA's own when present."""
        return self.g_state if self.ema_state is None else self.ema_state


def create_state(task, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                 seed: int, image_shape: tuple[int, int, int], use_ema: bool) -> GANState:
    """Initial state of a run from its seed (pure; jit it with out_shardings to place it)."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    g_vars, d_vars = task.init(init_key, image_shape)
    g_params, d_params = g_vars.pop("params"), d_vars.pop("params")
    return GANState(
        step=jnp.zeros((), jnp.int32), key=train_key,
        g_params=g_params, d_params=d_params, g_state=g_vars, d_state=d_vars,
        g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
        ema_params=jax.tree.map(jnp.copy, g_params) if use_ema else None,
        ema_state=jax.tree.map(jnp.copy, g_vars) if use_ema else None,
        skipped=jnp.zeros((), jnp.int32), task_state=task.init_task_state(image_shape))
