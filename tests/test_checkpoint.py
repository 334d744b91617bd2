"""Checkpoints store a CRC32 per state array and check them on restore (issue 17.8)."""

import dataclasses
import json
import shutil
import warnings
from typing import Any

import flax
import jax
import numpy as np
import pytest

from gan_jax import parallel
from gan_jax.checkpoint import CheckpointCorruptError, Checkpoints, checksums
from gan_jax.run import build_run
from gan_jax.train import train_and_evaluate


def _leaves(state):
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                       else x) for x in jax.tree.leaves(jax.device_get(state))]


def _flip_a_byte(step_dir):
    """Flip one bit in the middle of each array data file of the state (OCDBT writes the arrays
    into several files in an order that varies from run to run): it decodes, to wrong values."""
    for data in (step_dir / "state").glob("ocdbt.process_*/d/*"):
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        data.write_bytes(bytes(raw))


def _restore(config, workdir, step):
    run = build_run(config, jax.devices()[:1])
    checkpoints = Checkpoints(workdir)
    try:
        return checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh), step)[0]
    finally:
        checkpoints.close()


@pytest.fixture
def trained(tiny_config, one_device, tmp_path):
    state = train_and_evaluate(tiny_config, tmp_path / "run", devices=one_device, progress=False)
    return tiny_config, tmp_path / "run", state


def test_checksums_are_saved_and_match(trained):
    config, workdir, state = trained
    saved = json.loads((workdir / "checkpoints" / "4" / "checksums" / "metadata").read_text())
    assert saved == checksums(state) and len(saved) == len(jax.tree.leaves(state))
    restored = _restore(config, workdir, 4)
    for a, b in zip(_leaves(restored), _leaves(state)):
        np.testing.assert_array_equal(a, b)


def test_a_flipped_byte_is_detected(trained):
    """Was restored silently (an EMA weight became 1.7e36)."""
    config, workdir, _ = trained
    _flip_a_byte(workdir / "checkpoints" / "4")
    with pytest.raises(CheckpointCorruptError, match=r"checkpoint step 4: [1-9][0-9]* array\(s\) differ from "
                                                     r"their saved checksums \(e\.g\. [a-z_]+/"):
        _restore(config, workdir, 4)


def test_checkpoints_without_checksums_restore_unchecked(trained):
    config, workdir, state = trained
    shutil.rmtree(workdir / "checkpoints" / "4" / "checksums")  # as written before checksums
    for a, b in zip(_leaves(_restore(config, workdir, 4)), _leaves(state)):
        np.testing.assert_array_equal(a, b)


def test_train_falls_back_from_a_flipped_byte_and_resumes_bitwise(trained, tmp_path, one_device):
    config, workdir, _ = trained
    _flip_a_byte(workdir / "checkpoints" / "4")
    with pytest.warns(RuntimeWarning, match=r"checkpoint step 4 .*CheckpointCorruptError"):
        resumed = train_and_evaluate(config, workdir, devices=one_device, progress=False)
    unbroken = train_and_evaluate(config, tmp_path / "unbroken", devices=one_device,
                                  progress=False)
    for a, b in zip(_leaves(resumed), _leaves(unbroken)):
        np.testing.assert_array_equal(a, b)


@flax.struct.dataclass
class StateBeforeTaskState:
    """GANState's fields as saved before `task_state` existed."""

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


def test_a_checkpoint_saved_before_task_state_resumes_bitwise(trained, tmp_path, one_device):
    """Was set aside as unreadable (orbax: tree structures do not match) and the run restarted."""
    config, workdir, state = trained
    old = StateBeforeTaskState(**{f.name: getattr(state, f.name)
                                  for f in dataclasses.fields(StateBeforeTaskState)})
    checkpoints = Checkpoints(tmp_path / "old")
    checkpoints.save(old, _saved_config(workdir))
    checkpoints.close()
    metadata = (tmp_path / "old" / "checkpoints" / "4" / "state" / "_METADATA").read_text()
    assert "task_state" not in metadata and "task_state" in (
        workdir / "checkpoints" / "4" / "state" / "_METADATA").read_text()
    config.train.num_steps = 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing set aside
        resumed = train_and_evaluate(config, tmp_path / "old", devices=one_device, progress=False)
    unbroken = train_and_evaluate(config, workdir, devices=one_device, progress=False)
    assert int(resumed.step) == 6 and resumed.task_state == {}
    for a, b in zip(_leaves(resumed), _leaves(unbroken)):
        np.testing.assert_array_equal(a, b)


def _saved_config(workdir):
    checkpoints = Checkpoints(workdir)
    try:
        return checkpoints.restore_config(4)
    finally:
        checkpoints.close()
