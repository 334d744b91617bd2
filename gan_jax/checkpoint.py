"""Orbax checkpoints of the whole GANState plus the config that produced it.

Layout: WORKDIR/checkpoints/<step>/{state, config}, and WORKDIR/best/<step>/{state, config,
metrics} for the best checkpoint by an evaluation metric. The state is stored as arrays only (no
pickled code); the config and metrics as JSON. The training loop decides when to save; this module
decides how.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

from gan_jax import parallel


class Checkpoints:
    """Save/restore GANStates under WORKDIR/<subdir>, keeping the newest `keep`."""

    def __init__(self, workdir: str | Path, keep: int = 3, subdir: str = "checkpoints"):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True,
            # Synchronous: the next train step donates the state's buffers.
            enable_async_checkpointing=False)
        self.directory = Path(workdir).absolute() / subdir
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "config", "metrics"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state, config: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        """Save `state` at its own step (overwrites nothing: a step is saved once)."""
        step = int(parallel.to_host(state.step))
        if step in self._manager.all_steps():
            return
        items = dict(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config))
        if metrics is not None:
            items["metrics"] = ocp.args.JsonSave(metrics)
        self._manager.save(step, args=ocp.args.Composite(**items))

    def restore(self, abstract_state, sharding: NamedSharding, step: int | None = None):
        """(state placed with `sharding`, saved config dict) of `step` (default: the newest)."""
        step = self.latest_step() if step is None else step
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_state)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()))
        return restored.state, restored.config

    def restore_config(self, step: int | None = None) -> dict[str, Any]:
        """The config saved with `step` (default: the newest)."""
        step = self.latest_step() if step is None else step
        return self._manager.restore(step, args=ocp.args.Composite(
            config=ocp.args.JsonRestore())).config

    def restore_metrics(self, step: int | None = None) -> dict[str, Any]:
        """The metrics saved with `step` (default: the newest)."""
        step = self.latest_step() if step is None else step
        return self._manager.restore(step, args=ocp.args.Composite(
            metrics=ocp.args.JsonRestore())).metrics

    def quarantine(self, step: int) -> Path:
        """Move an unreadable checkpoint aside (kept for inspection, never deleted) and forget it.

        Multi-process: every process calls this; all agree on the name, process 0 moves it.
        """
        target = self.directory / f"{step}.unreadable"
        suffix = 1
        while target.exists():
            target, suffix = self.directory / f"{step}.unreadable.{suffix}", suffix + 1
        ocp.multihost.sync_global_processes(f"gan_jax_quarantine_{target.name}")
        if jax.process_index() == 0:
            (self.directory / str(step)).rename(target)
        ocp.multihost.sync_global_processes(f"gan_jax_quarantined_{target.name}")
        self._manager.reload()
        return target

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
