"""Data parallelism, in one module: a 1-D device mesh with axis `data`, pmap-style semantics
built from `jax.jit` + `jax.shard_map`.

Inside a step each device holds a full replica of the state and its own slice of the global batch;
gradients, mutable collections and metrics are averaged with `lax.pmean` over `data`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
# Batches are laid out (n_critic, global_batch, ...): split the second axis over devices.
BATCH_SPEC = P(None, DATA_AXIS)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named `data` over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, BATCH_SPEC)


def example_keys(key: jax.Array, local_batch: int) -> jax.Array:
    """One key per example, fold_in(key, global example index); call inside `data_parallel`.

    Keyed by the global index, the random numbers of an example do not depend on how many devices
    share the batch, so 1 device and 8 devices draw the same noise.
    """
    first = jax.lax.axis_index(DATA_AXIS) * local_batch
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(first + jnp.arange(local_batch))


def per_device(tree: Any) -> Any:
    """Mark a replicated pytree as per-device before differentiating w.r.t. it.

    Under shard_map the gradient w.r.t. a replicated (device-invariant) input is summed over
    devices implicitly. Differentiating w.r.t. a per-device copy gives each device its local
    gradient instead, which `mean_over_devices` then averages, as pmap did.
    """
    return jax.tree.map(lambda x: jax.lax.pcast(x, DATA_AXIS, to="varying"), tree)


def mean_over_devices(tree: Any) -> Any:
    """pmean over `data` of every floating leaf (integer leaves are left as they are)."""
    return jax.tree.map(
        lambda x: jax.lax.pmean(x, DATA_AXIS) if jnp.issubdtype(x.dtype, jnp.inexact) else x, tree)


def data_parallel(step: Callable, mesh: Mesh, donate_state: bool = True) -> Callable:
    """jit(shard_map(step)) for step(state, batch) -> (state, metrics); state replicated, batch split."""
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), BATCH_SPEC), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=(0,) if donate_state else ())


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Global device arrays from this process's (n_critic, B_local, ...) slices."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
