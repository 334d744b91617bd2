"""Building a run from a config: validated config, data source, task, optimizers, mesh, state.

Shared by training, sampling and benchmarking so each builds the same objects the same way.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from gan_jax import config as config_lib
from gan_jax import optim, parallel, precision
from gan_jax.data.image_pairs import make_pair_source
from gan_jax.data.sources import make_source, subset_source
from gan_jax.state import GANState, create_state
from gan_jax.tasks import ImageGANTask, build_task
from gan_jax.train_step import make_train_step


@dataclasses.dataclass
class Run:
    """Everything compiled and placed for one config on one mesh."""

    config: ml_collections.ConfigDict
    mesh: Mesh
    task: ImageGANTask
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation

    @property
    def image_shape(self) -> tuple[int, int, int]:
        d = self.config.data
        return (d.resolution, d.resolution, d.channels)

    def data_source(self, split: str = "train"):
        """The config's data (DataError when unusable). An image-to-image task reads
        `make_pair_source(data.dataset)`'s `split`, the train split at data.load_size (when set;
        the step crops it to data.resolution), A and B swapped for data.direction BtoA; a noise-to-image task reads `make_source(data.name)`
        (its split is part of the name), and inpainting (image-to-image on `pair_data` False)
        reads it for 'train' and `make_source(inpaint.test_data or data.name)` otherwise; the train
        split is cut to data.train_fraction of it (`subset_source`)."""
        d = self.config.data
        if self.task.image_to_image and self.task.pair_data:
            size = d.load_size or d.resolution if split == "train" else d.resolution
            pairs = make_pair_source(d.dataset, size, d.channels, split=split,
                                     data_dir=d.data_dir or None)
            return pairs if d.direction == "AtoB" else dataclasses.replace(pairs, a=pairs.b, b=pairs.a)
        name = d.name if split == "train" or not self.task.image_to_image else (
            self.config.inpaint.test_data or d.name)  # inpainting's test split
        source = make_source(name, d.resolution, d.channels, data_dir=d.data_dir or None,
                             mixed_channels=d.mixed_channels, workers=d.workers, cache=d.cache)
        return subset_source(source, d.train_fraction, d.subset_seed) if split == "train" else source

    def _init(self) -> GANState:
        return create_state(self.task, self.g_tx, self.d_tx, self.config.train.seed,
                            self.image_shape, use_ema=self.config.ema.decay > 0)

    def abstract_state(self) -> GANState:
        """Shapes and dtypes of the state, computed without running anything."""
        return jax.eval_shape(self._init)

    def init_state(self) -> GANState:
        """The initial state, created in place, replicated over the mesh."""
        return jax.jit(self._init, out_shardings=parallel.replicated(self.mesh))()

    def train_step(self, donate: bool = True) -> Callable:
        """The compiled data-parallel step(state, batch) -> (state, metrics)."""
        step = make_train_step(self.task, self.g_tx, self.d_tx, self.config)
        return parallel.data_parallel(step, self.mesh, donate_state=donate)

    def checked_train_step(self, example: dict[str, np.ndarray]) -> Callable:
        """`train_step()`, compiled now (before any state exists) for batches with `example`'s
        keys, shapes and dtypes (one example of the data source); ConfigError naming
        train.batch_size when XLA's memory estimate of the step exceeds a device's memory. The
        step's first call reuses this compile."""
        t = self.config.train
        batch_sharding, replicated = parallel.batch_sharding(self.mesh), parallel.replicated(self.mesh)
        batch = {k: jax.ShapeDtypeStruct((t.n_critic, t.batch_size, *v.shape[1:]), v.dtype,
                                         sharding=batch_sharding) for k, v in example.items()}
        state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                             self.abstract_state())
        step = self.train_step()
        need = step_memory(step.lower(state, batch).compile())
        device = self.mesh.devices.flat[0]
        have = device_memory(device, len(self.mesh.local_devices))
        config_lib.require_fits(need, have, t.batch_size, device.platform)
        return step


def step_memory(compiled) -> int | None:
    """Bytes one device needs to run `compiled`: arguments + outputs (less what donation aliases)
    + temporaries, from XLA's memory analysis; None where the backend does not report it."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
            + stats.temp_size_in_bytes)


def device_memory(device, local_devices: int = 1) -> int | None:
    """Bytes a computation may use on `device`: an accelerator's `bytes_limit`; for CPU devices,
    90% of the host's memory (or cgroup limit) shared by the `local_devices` of this process."""
    if device.platform != "cpu":
        return (device.memory_stats() or {}).get("bytes_limit")
    return int(0.9 * host_memory()) // local_devices


def host_memory() -> int:
    """Physical memory of this machine, or the cgroup (container) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            total = min(total, int(Path(limit).read_text()))
        except (OSError, ValueError):  # absent, or "max"
            pass
    return total


def build_run(config: ml_collections.ConfigDict, devices=None) -> Run:
    """Validate `config` (ConfigError before any compute) and build its Run."""
    mesh = parallel.make_mesh(devices)
    config_lib.validate(config, num_devices=mesh.devices.size, num_processes=jax.process_count())
    g_tx, d_tx = (precision.optimizer(optim.make_optimizer(config.optim[name]),
                                      config.train.compute_dtype) for name in ("g", "d"))
    return Run(config, mesh, build_task(config), g_tx, d_tx)
