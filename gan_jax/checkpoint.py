"""Orbax checkpoints of the whole GANState plus the config that produced it.

Layout: WORKDIR/checkpoints/<step>/{state, config, checksums}, and WORKDIR/best/<step>/{state,
config, checksums, metrics} for the best checkpoint by an evaluation metric. The state is stored as
arrays only (no pickled code); the config, metrics and a CRC32 of every state array as JSON. The
training loop decides when to save; this module decides how.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
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
    return {_path_name(path): crc(x) for path, x in jax.tree_util.tree_flatten_with_path(state)[0]}


Layout = dict[str, tuple[tuple[int, ...], str]]


def _path_name(path) -> str:
    """'g_params/Conv_0/kernel' for a pytree key path (dict keys, attributes, indices alike)."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _stored(leaf) -> jax.ShapeDtypeStruct:
    """How a leaf is stored: a typed PRNG key as its raw key data."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.eval_shape(jax.random.key_data, leaf)
    return leaf


def state_layout(abstract_state) -> Layout:
    """{leaf path: (shape, dtype)} of a state as a checkpoint stores it."""
    return {_path_name(path): (tuple(s.shape), str(s.dtype))
            for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]
            for s in [_stored(leaf)]}


def layout_changes(saved: Layout, wanted: Layout) -> list[str]:
    """'path: saved -> wanted' for each leaf whose shape or dtype differs or that one side lacks;
    a top-level field (g_params, ema_params, ...) that only one side has is one entry."""
    saved_top, wanted_top = ({path.split("/")[0] for path in x} for x in (saved, wanted))
    presence = lambda field, top: "present" if field in top else "absent"  # noqa: E731
    changes = [f"{f}: {presence(f, saved_top)} -> {presence(f, wanted_top)}"
               for f in sorted(saved_top ^ wanted_top)]
    for path in sorted(saved.keys() | wanted.keys()):
        old, new = saved.get(path), wanted.get(path)
        if old != new and path.split("/")[0] in saved_top & wanted_top:
            changes.append(f"{path}: {_leaf_text(old, new)} -> {_leaf_text(new, old)}")
    return changes


def _leaf_text(leaf: tuple | None, other: tuple | None) -> str:
    """'(3, 3, 8, 16)', with the dtype when it differs from `other`'s; 'absent' for None."""
    if leaf is None:
        return "absent"
    shape, dtype = leaf
    return f"{shape} {dtype}" if other is not None and other[1] != dtype else str(shape)


def remove_unfinished_saves(workdir: str | Path) -> list[Path]:
    """Delete orbax's temporary folders (`*.orbax-checkpoint-tmp*`: a save cut short by a crash or
    a full disk) under WORKDIR/checkpoints and WORKDIR/best; returns what was deleted."""
    leftovers = sorted(p for subdir in ("checkpoints", "best")
                       for p in (Path(workdir) / subdir).glob("*.orbax-checkpoint-tmp*"))
    for path in leftovers:
        shutil.rmtree(path)
    return leftovers


class Checkpoints:
    """Save/restore GANStates under WORKDIR/<subdir>, keeping the newest `keep`.

    `read_only` creates, moves and removes nothing.
    """

    def __init__(self, workdir: str | Path, keep: int = 3, subdir: str = "checkpoints",
                 read_only: bool = False):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep, save_interval_steps=int(not read_only),
            create=not read_only, read_only=read_only,
            # Synchronous: the next train step donates the state's buffers.
            enable_async_checkpointing=False)
        self.directory = Path(workdir).absolute() / subdir
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(max(level, logging.ERROR))  # not the "directory is read only" warning
        try:
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_handlers=dict(
                    state=ocp.StandardCheckpointHandler(), config=ocp.JsonCheckpointHandler(),
                    checksums=ocp.JsonCheckpointHandler(),
                    metrics=ocp.JsonCheckpointHandler()))
        finally:
            absl.setLevel(level)

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
        # A field without leaves that the checkpoint lacks (task_state, {} for most tasks, in
        # checkpoints saved before it existed) is not read: it keeps the target's empty value.
        saved_fields = self.fields(step)
        absent = [f.name for f in dataclasses.fields(target)
                  if f.name not in saved_fields and not jax.tree.leaves(getattr(target, f.name))]
        if absent:
            target = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)
                      if f.name not in absent}
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
        state = abstract_state.replace(**restored.state) if absent else restored.state
        return state, restored.config

    def layout(self, step: int) -> Layout:
        """{leaf path: (shape, dtype)} of the state saved at `step`, from its metadata (no array
        is read)."""
        tree = self._manager.item_metadata(step)["state"]
        if tree is None:
            raise FileNotFoundError(f"checkpoint step {step} has no state metadata")
        return {_path_name(path): (tuple(m.shape), str(m.dtype))
                for path, m in jax.tree_util.tree_flatten_with_path(tree)[0]}

    def fields(self, step: int) -> set[str]:
        """The state fields saved at `step`, those without leaves (an empty task_state) too."""
        return set(self._manager.item_metadata(step)["state"].keys())

    def reload(self) -> None:
        """Re-read the list of steps (another process may have saved or deleted some)."""
        self._manager.reload()

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
