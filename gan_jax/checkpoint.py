"""Orbax checkpoints of the whole GANState plus the config that produced it.

Layout: WORKDIR/checkpoints/<step>/{state, config}. The state is stored as arrays only (no pickled
code); the config as JSON. The training loop decides when to save; this module decides how.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding


class Checkpoints:
    """Save/restore GANStates under WORKDIR/checkpoints, keeping the newest `keep`."""

    def __init__(self, workdir: str | Path, keep: int = 3):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True,
            # Synchronous: the next train step donates the state's buffers.
            enable_async_checkpointing=False)
        self.directory = Path(workdir).absolute() / "checkpoints"
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "config"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state, config: dict[str, Any]) -> None:
        """Save `state` at its own step (overwrites nothing: a step is saved once)."""
        step = int(jax.device_get(state.step))
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config)))

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

    def quarantine(self, step: int) -> Path:
        """Move an unreadable checkpoint aside (kept for inspection, never deleted) and forget it."""
        target = self.directory / f"{step}.unreadable"
        suffix = 1
        while target.exists():
            target, suffix = self.directory / f"{step}.unreadable.{suffix}", suffix + 1
        (self.directory / str(step)).rename(target)
        self._manager.reload()
        return target

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
