"""Building a run from a config: validated config, data source, task, optimizers, mesh, state.

Shared by training, sampling and benchmarking so each builds the same objects the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import ml_collections
import optax
from jax.sharding import Mesh

from gan_jax import config as config_lib
from gan_jax import optim, parallel
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


def build_run(config: ml_collections.ConfigDict, devices=None) -> Run:
    """Validate `config` (ConfigError before any compute) and build its Run."""
    mesh = parallel.make_mesh(devices)
    config_lib.validate(config, num_devices=mesh.devices.size, num_processes=jax.process_count())
    return Run(config, mesh, build_task(config),
               optim.make_optimizer(config.optim.g), optim.make_optimizer(config.optim.d))
