"""kill -9 at random moments (mid-step, mid-checkpoint-write, during start-up), then restart:
the final parameters are bitwise those of an unbroken run.

The default suite kills twice in a 20-step run; `pytest -m slow` runs the long version (15 kills
in 40 steps).
"""

import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from gan_jax import parallel
from gan_jax.checkpoint import Checkpoints
from gan_jax.run import build_run
from conftest import load_config

def train_command(config_file, workdir, num_steps):
    return [sys.executable, "-m", "gan_jax.train", f"--workdir={workdir}",
            f"--config={config_file}", f"--config.train.num_steps={num_steps}",
            "--config.checkpoint.every_steps=1", "--config.train.sample_every_steps=0"]


def final_state(config, workdir, num_steps):
    run = build_run(config)
    checkpoints = Checkpoints(workdir)
    assert checkpoints.latest_step() == num_steps
    state, _ = checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh))
    checkpoints.close()
    return jax.device_get(state)


def run_with_random_kills(config_file, workdir, kills, seed, num_steps, time_limit=600):
    """Start training, SIGKILL it after a random delay, `kills` times; then let it finish."""
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + time_limit
    killed = 0
    while killed < kills and time.monotonic() < deadline:
        proc = subprocess.Popen(train_command(config_file, workdir, num_steps), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(1.0, 8.0))
            if proc.returncode == 0:
                return killed  # finished before the kill came
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
    r = subprocess.run(train_command(config_file, workdir, num_steps), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return killed


def check_kills(config_file, tmp_path, kills, seed, num_steps):
    unbroken = tmp_path / "unbroken"
    r = subprocess.run(train_command(config_file, unbroken, num_steps), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    killed = run_with_random_kills(config_file, tmp_path / "killed", kills, seed, num_steps)
    assert killed >= 1
    config = load_config(config_file)
    a, b = (final_state(config, workdir, num_steps) for workdir in (unbroken, tmp_path / "killed"))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_random_kills_then_resume_is_bitwise_unbroken(tiny_config_file, tmp_path):
    check_kills(tiny_config_file, tmp_path, kills=2, seed=0, num_steps=20)


@pytest.mark.slow
def test_many_random_kills_then_resume_is_bitwise_unbroken(tiny_config_file, tmp_path):
    check_kills(tiny_config_file, tmp_path, kills=15, seed=1, num_steps=40)
