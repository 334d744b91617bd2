"""Data parallelism, in one module: a 1-D device mesh with axis `data`, pmap-style semantics
built from `jax.jit` + `jax.shard_map`.

Inside a step each device holds a full replica of the state and its own slice of the global batch;
gradients, mutable collections and metrics are averaged with `lax.pmean` over `data`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
# Batches are laid out (n_critic, global_batch, ...): split the second axis over devices.
BATCH_SPEC = P(None, DATA_AXIS)


def use_deterministic_ops() -> None:
    """Ask XLA:GPU for deterministic kernels (scatter-adds, reductions and autotuned convolutions
    otherwise vary run to run: two H100 runs of one seed diverged by step 100). CPU runs are
    deterministic anyway. Takes effect only if called before JAX starts its backends."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_gpu_deterministic_ops" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()


def default_cache_dir() -> str:
    """The user cache dir for compiled train steps: $XDG_CACHE_HOME/gan_jax/xla (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gan_jax", "xla")


def use_compilation_cache(directory: str) -> str | None:
    """Turn on JAX's persistent compilation cache in `directory` (empty: JAX_COMPILATION_CACHE_DIR
    when set, else default_cache_dir()), so a restarted run loads its compiled steps instead of
    compiling them again; "off" turns it off. Returns the directory in use, or None.

    Cached executables are the compiler's output for the same program, so results are bitwise
    those of a fresh compile. Every computation is kept, also those that compile in under JAX's
    default `jax_persistent_cache_min_compile_time_secs` of 1 s (the loop's metric sums: 0.1-0.2 s
    of every restart otherwise; the state's init and sampling on a fast machine). Call it before
    the process's first compile: JAX opens its cache once, so later calls change nothing."""
    if directory == "off":
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    directory = directory or os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_cache_dir()
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return directory


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named `data` over `devices` (default: every device of every process).

    The default orders devices by process, so process p's devices hold the p-th block of columns
    of a global batch: the columns `data.pipeline.batch_indices` gives process p.
    """
    if devices is None:
        devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    devices = list(devices)
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


def gather_examples(x: jax.Array) -> jax.Array:
    """(B_local, ...) per device -> (B_global, ...) in global example order, the same (device-
    invariant) array on every device; call inside `data_parallel`. Typed PRNG keys too."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = gather_examples(jax.random.key_data(x))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.lax.all_gather(x, DATA_AXIS, axis=0, tiled=True, to="invarying")


def local_examples(x: jax.Array, local_batch: int) -> jax.Array:
    """This device's `local_batch` rows of a global (B_global, ...) array (`gather_examples`'s
    inverse); call inside `data_parallel`."""
    start = jax.lax.axis_index(DATA_AXIS) * local_batch
    return jax.lax.dynamic_slice_in_dim(x, start, local_batch)


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


def sum_over_devices(tree: Any) -> Any:
    """psum over `data` of every leaf: totals the same (device-invariant) on every device."""
    return jax.tree.map(lambda x: jax.lax.psum(x, DATA_AXIS), tree)


def data_parallel(step: Callable, mesh: Mesh, donate_state: bool = True) -> Callable:
    """jit(shard_map(step)) for step(state, batch) -> (state, metrics); state replicated, batch split."""
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), BATCH_SPEC), out_specs=(P(), P()))
    compiled = jax.jit(sharded, donate_argnums=(0,) if donate_state else ())
    if jax.process_count() > 1 and mesh.devices.flat[0].platform == "cpu":
        return _BoundedQueue(compiled, MAX_STEPS_IN_FLIGHT)
    return compiled


# Multi-process CPU runs hang in XLA's cross-process CPU collectives (gloo) once dozens of steps
# are queued ahead of the devices (jax 0.10: after about 60 steps without a host sync); a few
# queued steps keep the host ahead of the devices all the same.
MAX_STEPS_IN_FLIGHT = 4


class _BoundedQueue:
    """`step` that first waits for the metrics of the call `depth` calls back (the state of that
    call is donated to the next one, so it cannot be waited for)."""

    def __init__(self, step: Callable, depth: int):
        self._step, self._depth, self._pending = step, depth, []

    def __call__(self, state, batch):
        state, metrics = self._step(state, batch)
        self._pending.append(metrics)
        if len(self._pending) > self._depth:
            jax.block_until_ready(self._pending.pop(0))
        return state, metrics

    def __getattr__(self, name):  # lower, trace, ... of the jitted step
        return getattr(self._step, name)


def to_host(tree: Any) -> Any:
    """Numpy copy of a pytree of replicated (or process-local) arrays, on every process.

    Every process holds a full replica of a replicated array, so its first local shard is the value;
    `jax.device_get` would need every shard to be addressable.
    """
    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return jax.device_get(x)
    return jax.tree.map(fetch, tree)


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Global device arrays from this process's (n_critic, B_local, ...) slices."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
