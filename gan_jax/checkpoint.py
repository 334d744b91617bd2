"""Orbax checkpoints of the whole GANState plus the config that produced it.

Layout: WORKDIR/checkpoints/<step>/{state, config, checksums}, and WORKDIR/best/<step>/{state,
config, checksums, metrics} for the best checkpoint by an evaluation metric. The state is stored as
arrays only (no pickled code); the config, metrics and a CRC32 of every state array as JSON. The
training loop decides when to save; this module decides how.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

from gan_jax import parallel


class CheckpointCorruptError(ValueError):
    """A checkpoint's arrays differ from the checksums saved with them (damaged on disk)."""


def checksums(state) -> dict[str, str]:
    """{leaf path: CRC32 (8 hex digits) of its bytes} of a (replicated) state, on every process."""
    def crc(x) -> str:
        x = jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        return f"{zlib.crc32(np.ascontiguousarray(parallel.to_host(x))):08x}"
    return {jax.tree_util.keystr(path): crc(x)
            for path, x in jax.tree_util.tree_flatten_with_path(state)[0]}


class Checkpoints:
    """Save/restore GANStates under WORKDIR/<subdir>, keeping the newest `keep`."""

    def __init__(self, workdir: str | Path, keep: int = 3, subdir: str = "checkpoints"):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True,
            # Synchronous: the next train step donates the state's buffers.
            enable_async_checkpointing=False)
        self.directory = Path(workdir).absolute() / subdir
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "config", "checksums", "metrics"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state, config: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        """Save `state` at its own step (overwrites nothing: a step is saved once)."""
        step = int(parallel.to_host(state.step))
        if step in self._manager.all_steps():
            return
        items = dict(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config),
                     checksums=ocp.args.JsonSave(checksums(state)))
        if metrics is not None:
            items["metrics"] = ocp.args.JsonSave(metrics)
        self._manager.save(step, args=ocp.args.Composite(**items))

    def restore(self, abstract_state, sharding: NamedSharding, step: int | None = None):
        """(state placed with `sharding`, saved config dict) of `step` (default: the newest).

        CheckpointCorruptError when an array differs from its saved checksum (checkpoints written
        before checksums were stored are restored unchecked)."""
        step = self.latest_step() if step is None else step
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_state)
        items = dict(state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore())
        checked = (self.directory / str(step) / "checksums").exists()
        if checked:
            items["checksums"] = ocp.args.JsonRestore()
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        if checked:
            saved, found = restored.checksums, checksums(restored.state)
            bad = [path for path in found if saved.get(path) != found[path]]
            if bad or set(saved) != set(found):
                raise CheckpointCorruptError(
                    f"checkpoint step {step}: {len(bad)} array(s) differ from their saved "
                    f"checksums (e.g. {(bad or sorted(set(saved) ^ set(found)))[0]}); the files "
                    f"are damaged")
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
