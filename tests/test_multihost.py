"""Multi-process runs: when jax.distributed starts, checkpoints across device counts, 2x4 = 1x8.

The two-process test launches the real `train` command twice on localhost (4 CPU devices each,
gloo collectives) into one shared workdir and compares the result with 1 process on 8 devices.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import load_config
from gan_jax import distributed, parallel
from gan_jax.checkpoint import Checkpoints
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import make_source
from gan_jax.run import build_run
from gan_jax.train import train_and_evaluate

WAIT_S = 240  # for any child process


def state_leaves(state):
    """Every leaf of a GANState as numpy (PRNG keys as their key data)."""
    def host(x):
        x = parallel.to_host(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)
    return [host(x) for x in jax.tree.leaves(state)]


def assert_states_equal(a, b):
    la, lb = state_leaves(a), state_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


# --- when jax.distributed.initialize is called ------------------------------------------------


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "8"}, "slurm"),
    ({"SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "1"}, None),  # srun -n1
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}, None),  # the sbatch script itself, not srun
    ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "2"}, "openmpi"),
    ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "1"}, None),
    ({"TPU_WORKER_HOSTNAMES": "t-0,t-1"}, "tpu"),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),  # a single-host TPU VM
    ({"MEGASCALE_COORDINATOR_ADDRESS": "t-0:8080"}, "tpu"),
])
def test_launcher_is_read_from_the_environment(environ, expected):
    assert distributed.launcher(environ) == expected


@pytest.fixture
def calls(monkeypatch):
    """Records jax.distributed.initialize and jax.config.update calls instead of making them."""
    made = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a: made.append(("initialize", a)))
    monkeypatch.setattr(jax.config, "update", lambda *a: made.append(("update", a)))
    return made


def test_single_process_initializes_nothing(calls):
    assert not distributed.initialize(environ={})
    assert not distributed.initialize(num_processes=1, environ={})
    assert calls == []


def test_explicit_flags_initialize_with_gloo_first(calls):
    assert distributed.initialize("10.0.0.1:1234", 2, 1, [0, 1], environ={})
    assert calls == [("update", ("jax_cpu_collectives_implementation", "gloo")),
                     ("initialize", ("10.0.0.1:1234", 2, 1, [0, 1]))]


@pytest.mark.parametrize("kwargs, environ", [
    (dict(multihost=True), {}),
    ({}, {"SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2"}),
])
def test_multihost_flag_or_cluster_env_leaves_detection_to_jax(calls, kwargs, environ):
    assert distributed.initialize(**kwargs, environ=environ)
    assert calls[-1] == ("initialize", (None, None, None, None))


def test_unknown_cpu_collectives_is_refused(calls):
    with pytest.raises(ValueError, match="cpu_collectives must be one of gloo, mpi"):
        distributed.initialize(multihost=True, cpu_collectives="nccl")
    assert calls == []


# --- checkpoints across device counts ---------------------------------------------------------


def _continue(state, config, devices, stop):
    """`state` stepped on `devices` to step `stop` with the batches the training loop feeds."""
    run = build_run(config, devices)
    state = jax.device_put(state, parallel.replicated(run.mesh))
    step_fn = run.train_step()
    d, t = config.data, config.train
    start = int(parallel.to_host(state.step))
    with BatchIterator(make_source(d.name, d.resolution, d.channels), t.seed, start, t.batch_size,
                       t.n_critic) as batches:
        for _ in range(start, stop):
            state, _ = step_fn(state, parallel.put_batch(next(batches)[1], run.mesh))
    return state


@pytest.fixture
def compilation_cache(tmp_path):
    """A persistent compilation cache for one test: its repeated compilations load instead."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    previous = (jax.config.jax_compilation_cache_dir,
                jax.config.jax_persistent_cache_min_compile_time_secs)
    cc.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    yield
    cc.reset_cache()
    jax.config.update("jax_compilation_cache_dir", previous[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])


def test_checkpoints_resume_on_another_device_count(tiny_config, tmp_path, compilation_cache):
    """Saved on 8 devices, resumed on 1, then on 8 again: each resume restores the exact saved
    state and continues with the math of its own device count (bitwise)."""
    tiny_config.model.g_norm, tiny_config.model.d_norm = "none", "layer"
    state = None
    for devices, steps in ((8, 2), (1, 4), (8, 6)):
        devices = jax.devices()[:devices]
        tiny_config.train.num_steps = steps
        if state is not None:
            run = build_run(tiny_config, devices)
            checkpoints = Checkpoints(tmp_path)
            restored, _ = checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh))
            checkpoints.close()
            assert {d for x in jax.tree.leaves(restored) for d in x.devices()} == set(devices)
            assert_states_equal(restored, state)
            expected = _continue(state, tiny_config, devices, steps)
        state = train_and_evaluate(tiny_config, tmp_path, devices=devices, progress=False)
        assert int(state.step) == steps
        if steps > 2:
            assert_states_equal(state, expected)


# --- two processes x 4 devices = one process x 8 devices -------------------------------------


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(workdir, config_file, overrides, log_dir):
    """Start `python -m gan_jax.train` as processes 0 and 1 of 2 (4 CPU devices each) on 127.0.0.1:
    ([Popen], [log file]) with both processes' output in the logs."""
    port = _free_port()
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
               # A resumed launch reuses the first launch's compiled step.
               JAX_COMPILATION_CACHE_DIR=str(log_dir.parent / "jax_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    log_dir.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    for i in range(2):
        logs.append(open(log_dir / f"stderr_{i}.txt", "w+"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gan_jax.train", f"--workdir={workdir}",
             f"--config={config_file}", *overrides,
             f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
             f"--process_id={i}"],
            stdout=logs[i], stderr=subprocess.STDOUT, env=env))
    return procs, logs


def _finish(procs, logs, deadline):
    """Wait for both until `deadline` (killing both once one fails or time is up):
    [(returncode, output)]."""
    try:
        while (any(p.poll() is None for p in procs) and time.monotonic() < deadline
               and all(p.poll() in (None, 0) for p in procs)):
            time.sleep(0.2)
        results = []
        for proc, log in zip(procs, logs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            log.seek(0)
            results.append((proc.returncode, log.read()))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for log in logs:
            log.close()


def _train_two_processes(workdir, config_file, overrides, log_dir):
    """Both processes to the end. Once one fails, or after WAIT_S seconds, the other is killed
    (a lone process would wait for its peer until JAX's own timeouts)."""
    procs, logs = _launch_two(workdir, config_file, overrides, log_dir)
    return _finish(procs, logs, time.monotonic() + WAIT_S)


@pytest.mark.parametrize("signum", [
    # test_preemption.py checks SIGTERM on one process in the default suite
    pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, id="SIGINT", marks=pytest.mark.slow)])
def test_signal_to_one_process_stops_both_at_one_checkpoint(tiny_config_file, tmp_path,
                                                           compilation_cache, signum):
    """A preemption notice (or Ctrl-C, forwarded to JAX's preemption service as SIGTERM) reaching
    one process: both save the same step and exit 0."""
    workdir = tmp_path / "run"
    never = ["--config.train.num_steps=100000", "--config.train.log_every_steps=100000",
             "--config.checkpoint.every_steps=100000", "--config.model.g_norm=none",
             "--config.model.d_norm=none"]
    procs, logs = _launch_two(workdir, tiny_config_file, never, tmp_path / "logs")
    deadline = time.monotonic() + WAIT_S
    try:
        while not re.search(r"\b\d{2,}/100000", (tmp_path / "logs" / "stderr_0.txt").read_text()):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.2)
        procs[1].send_signal(signum)
    except BaseException:
        _finish(procs, logs, time.monotonic())
        raise
    results = _finish(procs, logs, deadline)
    steps = []
    for i, (rc, log) in enumerate(results):
        assert rc == 0, f"process {i}:\n{log[-3000:]}"
        steps.append(int(re.search(r"saved checkpoint at step (\d+), exiting", log).group(1)))
    assert steps[0] == steps[1] >= 10
    assert Checkpoints(workdir).steps() == [steps[0]]


def _check_two_process_run(tiny_config_file, tmp_path, overrides, config):
    workdir = tmp_path / "two"
    config.train.sample_every_steps = 2
    overrides = [*overrides, "--config.train.sample_every_steps=2"]
    results = _train_two_processes(workdir, tiny_config_file, overrides, tmp_path / "logs")
    for i, (rc, log) in enumerate(results):
        assert rc == 0, f"process {i}:\n{log[-3000:]}"
    assert "4/4" in results[0][1] and "step/s" in results[0][1]  # process 0's progress bar
    assert "step/s" not in results[1][1]

    # Only process 0 writes logs, samples and config (both would append to metrics.jsonl).
    metrics = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4]
    assert len(list((workdir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png"]
    assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 4
    env = json.loads((workdir / "environment.json").read_text())
    assert (env["process_count"], env["process_index"], len(env["devices"])) == (2, 0, 8)

    eight = jax.devices()[:8]
    reference = train_and_evaluate(config, tmp_path / "one", devices=eight, progress=False)
    run = build_run(config, eight)
    checkpoints = Checkpoints(workdir)
    saved = sorted(int(p.name) for p in checkpoints.directory.iterdir() if p.name.isdigit())
    assert saved == [2, 4]
    two, _ = checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh))
    checkpoints.close()
    _assert_close(two, reference)

    # A second launch resumes the two-process run. Its newest checkpoint is damaged: both processes
    # find it unreadable, process 0 moves it aside, and both resume from step 2. Logging and
    # checkpointing only at the end, the host queues steps as fast as it can (a CPU collectives
    # hang after ~60 queued steps, see parallel.MAX_STEPS_IN_FLIGHT).
    for p in (workdir / "checkpoints" / "4" / "state").rglob("*"):
        if p.name in ("manifest.ocdbt", "_METADATA"):
            p.unlink()
    config.train.num_steps = 100
    config.train.log_every_steps = config.checkpoint.every_steps = 1000
    longer = ["--config.train.num_steps=100", "--config.train.log_every_steps=1000",
              "--config.checkpoint.every_steps=1000"]
    results = _train_two_processes(workdir, tiny_config_file, [*overrides, *longer],
                                   tmp_path / "logs2")
    for i, (rc, log) in enumerate(results):
        assert rc == 0, f"process {i} (resumed):\n{log[-3000:]}"
        assert "checkpoint step 4 is unreadable" in log
    assert (workdir / "checkpoints" / "4.unreadable").is_dir()
    # The run resumed from step 2, so the line of the unreadable step 4 went with it.
    assert [json.loads(l)["step"] for l in (workdir / "metrics.jsonl").read_text().splitlines()
            ] == [2, 100]
    reference = train_and_evaluate(config, tmp_path / "one", devices=eight, progress=False)
    checkpoints = Checkpoints(workdir)
    assert checkpoints.latest_step() == 100
    two, _ = checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh))
    checkpoints.close()
    _assert_close(two, reference)


def _assert_close(two, one):
    """2x4 vs 1x8: the same math up to the summation order of the cross-device mean.

    Not bitwise: gloo's all-reduce adds the 8 devices' gradients in another order than XLA's
    in-process all-reduce (with a fixed-order mean, all_gather then sum, the two are bitwise equal).
    """
    assert int(two.step) == int(one.step)
    for x, y in zip(state_leaves(two), state_leaves(one)):
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(x, y)


def test_two_processes_of_four_devices_match_one_process_of_eight(tiny_config_file, tmp_path,
                                                                  compilation_cache):
    config = load_config(tiny_config_file)
    config.model.g_norm = config.model.d_norm = "none"
    _check_two_process_run(tiny_config_file, tmp_path,
                           ["--config.model.g_norm=none", "--config.model.d_norm=none"], config)


@pytest.mark.slow
def test_two_processes_with_cross_replica_batch_norm(tiny_config_file, tmp_path, compilation_cache):
    config = load_config(tiny_config_file)
    config.model.cross_replica_bn = True  # G has BatchNorm in the tiny config (D: none)
    _check_two_process_run(tiny_config_file, tmp_path, ["--config.model.cross_replica_bn=True"],
                           config)
