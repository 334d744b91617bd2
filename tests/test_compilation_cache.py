"""`train --compilation_cache`: a restart loads its compiled steps from the persistent cache."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax.sample import restore_workdir


def train(workdir, config_file, *flags, env=None):
    """Run the train command in a fresh process; fail the test on a nonzero exit."""
    proc = subprocess.run([sys.executable, "-m", "gan_jax.train", f"--workdir={workdir}",
                           f"--config={config_file}", *flags], capture_output=True, text=True,
                          timeout=180, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr


def state_leaves(workdir):
    _, state = restore_workdir(str(workdir))
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
        (state.g_params, state.d_params, state.g_opt_state, state.d_opt_state, state.ema_params)))]


@pytest.mark.slow
def test_restart_compiles_nothing_new_and_gives_identical_state(tiny_config_file, tmp_path):
    cache = tmp_path / "cache"
    # conftest's JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 (inherited): every compile is kept.
    train(tmp_path / "cold", tiny_config_file, env={"JAX_COMPILATION_CACHE_DIR": str(cache)})
    entries = sorted(os.listdir(cache))
    assert any(name.startswith("jit_train_step-") for name in entries), entries
    train(tmp_path / "warm", tiny_config_file, f"--compilation_cache={cache}")
    assert sorted(os.listdir(cache)) == entries  # every lookup hit: no new entry written
    for cold, warm in zip(state_leaves(tmp_path / "cold"), state_leaves(tmp_path / "warm"),
                          strict=True):
        np.testing.assert_array_equal(cold, warm)


COMPILE_ONE = ("import sys; from gan_jax import parallel; parallel.use_compilation_cache(sys.argv[1]); "
               "import jax; jax.jit(lambda x: x + 1)(1)")


@pytest.mark.parametrize("flag", ["", "off"])
def test_off_writes_no_cache_and_the_default_is_the_environment_variable(flag, tmp_path):
    # Without conftest's JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0: the cache keeps this
    # millisecond compile by itself.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE_")},
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", COMPILE_ONE, flag], check=True, env=env, timeout=60)
    assert len(os.listdir(tmp_path)) == (0 if flag == "off" else 1)
