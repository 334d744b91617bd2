"""SIGTERM saves and exits cleanly; the resumed run is bitwise the unbroken one; one process per workdir."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import load_config, run_module
from gan_jax.train import train_and_evaluate
from gan_jax.workdir import exclusive


def wait_for_logged_steps(path, count, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{path} did not reach {count} lines")


def test_sigterm_checkpoints_exits_zero_and_resume_is_bitwise_unbroken(tiny_config_file, tmp_path):
    workdir = tmp_path / "preempted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan_jax.train", f"--workdir={workdir}",
         f"--config={tiny_config_file}", "--config.train.num_steps=100000",
         "--config.checkpoint.every_steps=100000", "--config.train.sample_every_steps=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_logged_steps(workdir / "metrics.jsonl", 3)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    saved = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(saved) == 1 and saved[0] >= 3
    step = saved[0]
    assert f"signal received: saved checkpoint at step {step}, exiting" in stderr
    last_logged = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last_logged["step"] == step  # logs flushed up to the checkpoint

    config = load_config(tiny_config_file)
    config.train.num_steps = step + 2
    resumed = train_and_evaluate(config, workdir, progress=False)
    unbroken = train_and_evaluate(config, tmp_path / "unbroken", progress=False)
    for a, b in zip(jax.tree.leaves(jax.device_get(resumed)),
                    jax.tree.leaves(jax.device_get(unbroken))):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_second_process_on_same_workdir_is_refused(tiny_config_file, tmp_path):
    with exclusive(tmp_path):
        r = run_module("gan_jax.train", f"--workdir={tmp_path}", f"--config={tiny_config_file}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: workdir {tmp_path} is in use by another training process (pid {os.getpid()}); "
        f"wait for it to finish or use another --workdir")
    assert not (tmp_path / "checkpoints").exists()
    with exclusive(tmp_path):  # released: can be taken again
        pass


def _signal_during_imports(args, signum, delay=0.5):
    """(returncode, stderr) of `python -m gan_jax.train args` sent `signum` `delay` s after it
    starts: inside its imports (jax, flax, orbax take seconds)."""
    proc = subprocess.Popen([sys.executable, "-m", "gan_jax.train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(delay)
        assert proc.poll() is None
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_start_up_exits_zero_in_one_line(tiny_config_file, tmp_path, signum):
    """Was rc 143 (SIGTERM) or a KeyboardInterrupt traceback (SIGINT) before the loop started."""
    workdir = tmp_path / "run"
    rc, stderr = _signal_during_imports([f"--workdir={workdir}", f"--config={tiny_config_file}"],
                                        signum)
    assert rc == 0, stderr
    assert stderr.strip().splitlines() == [
        f"{signum.name} received outside the training loop: exiting (checkpoints already saved "
        f"are kept)"]
    assert not workdir.exists()


def test_signal_during_start_up_keeps_the_checkpoints(tiny_config_file, tmp_path):
    workdir = tmp_path / "run"
    train_and_evaluate(load_config(tiny_config_file), workdir, progress=False)
    before = sorted((p.relative_to(workdir), p.stat().st_mtime_ns) for p in workdir.rglob("*"))
    rc, stderr = _signal_during_imports([f"--workdir={workdir}", f"--config={tiny_config_file}",
                                         "--config.train.num_steps=8"], signal.SIGINT)
    assert rc == 0 and "Traceback" not in stderr, stderr
    assert sorted((p.relative_to(workdir), p.stat().st_mtime_ns) for p in workdir.rglob("*")) == before
