"""Never lose a run, never save a broken state (issue 17 items 1, 2, 5, 7, 10; issue 12 item 4):
config changes that alter the state's structure, non-finite states, environment errors, reading
a workdir while it is damaged or being written, the workdir lock and replayed metrics."""

import errno
import fcntl
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import textwrap

import jax
import ml_collections
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import checkpoint, evaluate, parallel, run as run_lib, sample
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import make_source
from gan_jax.metrics import reference
from gan_jax.train import restore_or_init, train_and_evaluate
from gan_jax.workdir import WorkdirBusyError, exclusive
from conftest import run_module
from test_train import _corrupt


def tree_listing(root):
    """Every path under `root` with its size (files) : the workdir as a reader must leave it."""
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1)
                  for p in root.rglob("*"))


def one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def step_dirs(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- 17.1: a change of the state's structure is refused, or carried over for the EMA ---

def test_layout_changes_name_each_leaf_that_differs():
    saved = {"g_params/k": ((3, 3, 8, 16), "float32"), "g_params/b": ((16,), "float32"),
             "g_params/old": ((2,), "float32"), "ema_params/k": ((3, 3, 8, 16), "float32")}
    wanted = {"g_params/k": ((3, 3, 16, 32), "float32"), "g_params/b": ((16,), "bfloat16"),
              "g_params/new": ((4,), "float32")}
    assert checkpoint.layout_changes(saved, wanted) == [
        "ema_params: present -> absent", "g_params/b: (16,) float32 -> (16,) bfloat16",
        "g_params/k: (3, 3, 8, 16) -> (3, 3, 16, 32)", "g_params/new: absent -> (4,)",
        "g_params/old: (2,) -> absent"]
    assert checkpoint.layout_changes(saved, saved) == []


def test_shape_change_is_refused_in_one_line_and_nothing_is_renamed(tiny_config_file, tmp_path):
    workdir = tmp_path / "run"
    proc = run_module("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}")
    assert proc.returncode == 0, proc.stderr
    before = tree_listing(workdir / "checkpoints")
    proc = run_module("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}",
                      "--config.train.num_steps=6", "--config.model.width=16",
                      "--config.allow_config_change=True")
    line = one_line_error(proc)
    assert line.startswith(f"error: checkpoint step 4 in {workdir / 'checkpoints'} holds a state of "
                           "another structure than this config builds: ")
    assert "d_opt_state/0/mu/Conv_0/bias: (8,) -> (16,)" in line
    assert line.endswith("more); undo the change or use a new --workdir")
    assert tree_listing(workdir / "checkpoints") == before  # nothing renamed, nothing written


def test_turning_the_ema_off_and_on_is_carried_over(tiny_config, tmp_path, one_device):
    workdir = tmp_path / "run"
    tiny_config.allow_config_change = True
    train_and_evaluate(tiny_config, workdir, devices=one_device, progress=False)
    decay = tiny_config.ema.decay
    tiny_config.train.num_steps, tiny_config.ema.decay = 6, 0.0
    with pytest.warns(RuntimeWarning, match="ema.decay=0: dropping the EMA generator of "
                                            "checkpoint step 4"):
        train_and_evaluate(tiny_config, workdir, devices=one_device, progress=False)
    tiny_config.train.num_steps, tiny_config.ema.decay = 8, decay
    with pytest.warns(RuntimeWarning, match="starting ema_params and ema_state from the "
                                            "generator of checkpoint step 6"):
        train_and_evaluate(tiny_config, workdir, devices=one_device, progress=False)
    assert step_dirs(workdir / "checkpoints") == ["4", "6", "8"]

    # What the last run started from: the EMA is the restored generator, bit for bit.
    shutil.rmtree(workdir / "checkpoints" / "8")
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    run = run_lib.build_run(config, one_device)
    with pytest.warns(RuntimeWarning, match="starting ema_params and ema_state"):
        state = restore_or_init(run, checkpoint.Checkpoints(workdir), config_lib.to_plain(config))
    assert int(state.step) == 6
    for a, b in zip(jax.tree.leaves((state.g_params, state.g_state)),
                    jax.tree.leaves((state.ema_params, state.ema_state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.leaves(state.ema_state)  # the tiny DCGAN's G has BatchNorm statistics


# --- 17.2 and 12.4: only finite states are evaluated or written; logged values are means ---

class ChannelMeans:
    """A cheap feature extractor: four pixel values per image."""

    name, fingerprint = "pixels", "v1"

    def __call__(self, images):
        return {"features": images.reshape(len(images), -1)[:, :4].astype(np.float32)}


def test_non_finite_state_is_never_evaluated_or_saved(tiny_config, one_device, tmp_path,
                                                      monkeypatch):
    monkeypatch.setenv(reference.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(evaluate, "make_extractor", lambda *a, **k: ChannelMeans())
    c = tiny_config
    c.optim.g.name = c.optim.d.name = "sgd"
    c.optim.g.learning_rate = c.optim.d.learning_rate = 3.0  # the params are NaN from step 17
    c.ema.decay = 0.0
    c.train.num_steps, c.train.log_every_steps = 30, 7
    c.checkpoint.every_steps = 15  # step 20 (an eval step) is neither a log nor a save step
    c.eval.every_steps, c.eval.metrics, c.eval.num_samples = 5, "fid", 20
    with pytest.raises(FloatingPointError, match=r"^non-finite values at step 20: .*updated params; "
                                                 r"last good checkpoint: step 15 "):
        train_and_evaluate(c, tmp_path / "run", devices=one_device, progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "eval").iterdir()) == [
        f"step_{s:07d}.json" for s in (5, 10, 15)]
    assert step_dirs(tmp_path / "run" / "checkpoints") == ["15"]
    for kind in ("best", "latest"):
        _, state = sample.restore_workdir(str(tmp_path / "run"), kind)
        assert int(state.step) <= 15
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.g_params))


def test_logged_metrics_are_means_over_the_logging_interval(tiny_config, one_device, tmp_path):
    tiny_config.train.num_steps, tiny_config.train.log_every_steps = 6, 3
    tiny_config.checkpoint.every_steps = 6
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]

    run = run_lib.build_run(tiny_config, one_device)
    step_fn, state = run.train_step(), run.init_state()
    d = tiny_config.data
    per_step = []
    with BatchIterator(make_source(d.name, d.resolution, d.channels), tiny_config.train.seed, 0,
                       tiny_config.train.batch_size, 1, 0, 1) as batches:
        for _ in range(6):
            state, metrics = step_fn(state, parallel.put_batch(next(batches)[1], run.mesh))
            per_step.append({k: np.float32(v) for k, v in jax.device_get(metrics).items()})
    assert [r["step"] for r in logged] == [3, 6]
    for record, steps in zip(logged, (per_step[:3], per_step[3:])):
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "params_finite"):
            total = steps[0][key]
            for s in steps[1:]:
                total = np.float32(total + s[key])  # summed in float32, in step order
            assert record[key] == float(total) / 3, key
        assert record["skipped"] == 0
    assert logged[0]["d_loss"] != per_step[2]["d_loss"]  # not the last step's value


# --- 17.5: environment errors are one line; unfinished saves are removed on the next start ---

PATCHED_TRAIN = textwrap.dedent("""
    import errno, os, sys
    import orbax.checkpoint as ocp
    from gan_jax import workdir
    how = sys.argv.pop(1)
    if how == "full":
        def save(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", sys.argv[1].split("=", 1)[1])
        ocp.CheckpointManager.save = save
    else:  # a read-only workdir (the tests run as root, who may write anywhere)
        real_open = os.open
        def guarded_open(path, flags, *args):
            if str(path).endswith(".lock") or flags & os.O_CREAT:
                raise PermissionError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, flags, *args)
        workdir.os.open = guarded_open
        workdir.Path.write_text = lambda self, *a, **k: guarded_open(self, os.O_CREAT)
    from gan_jax.train import main
    main(sys.argv)
""")


@pytest.mark.parametrize("how, message", [
    ("file", "error: --workdir {w} is not a directory ({w} or a folder above it is a file); "
             "pass another --workdir"),
    ("read-only", "error: cannot write {w}/.lock (Read-only file system); make the workdir "
                  "writable or pass another --workdir"),
    ("full", "error: no space left on the device of {w}; free some space and rerun the same "
             "command: training resumes from the last checkpoint"),
])
def test_environment_errors_are_one_line(tiny_config_file, tmp_path, how, message):
    workdir = tmp_path / "run"
    args = [f"--workdir={workdir}", f"--config={tiny_config_file}"]
    if how == "file":
        workdir.write_text("not a folder")
        proc = run_module("gan_jax.train", *args)
    else:
        workdir.mkdir()
        proc = subprocess.run([sys.executable, "-c", PATCHED_TRAIN, how, *args],
                              capture_output=True, text=True, timeout=180)
    assert one_line_error(proc) == message.format(w=workdir)


def test_unfinished_saves_are_removed_on_the_next_start(tiny_config, one_device, tmp_path):
    tiny_config.train.num_steps = 2
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    leftovers = [tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1733130000",
                 tmp_path / "best" / "2.orbax-checkpoint-tmp-1733130001"]
    for path in leftovers:
        (path / "state").mkdir(parents=True)
        (path / "state" / "partial").write_bytes(b"\0" * 10)
    tiny_config.train.num_steps = 4
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert step_dirs(tmp_path / "checkpoints") == ["2", "4"]
    assert step_dirs(tmp_path / "best") == []


# --- 17.7: sample/evaluate read a damaged or changing workdir without changing it ---

@pytest.fixture
def trained(tiny_config_file, tmp_path):
    workdir = tmp_path / "run"
    proc = run_module("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}")
    assert proc.returncode == 0, proc.stderr
    return workdir


def test_sample_falls_back_from_a_damaged_checkpoint_and_changes_nothing(trained, tmp_path):
    _corrupt(trained / "checkpoints" / "4", "garbage")
    before = tree_listing(trained)
    proc = run_module("gan_jax.sample", f"--workdir={trained}", "--num=4",
                      f"--out={tmp_path / 'a.png'}")
    assert proc.returncode == 0, proc.stderr
    assert f"checkpoint step 4 in {trained / 'checkpoints'} is unreadable (" in proc.stderr
    assert "trying the previous one" in proc.stderr and (tmp_path / "a.png").is_file()
    proc = run_module("gan_jax.sample", f"--workdir={trained}", "--checkpoint=best", "--num=4",
                      f"--out={tmp_path / 'b.png'}")
    assert one_line_error(proc).startswith(f"error: no best checkpoint in {trained / 'best'}")
    assert tree_listing(trained) == before  # nothing renamed, no best/ created


def test_checkpoint_deleted_while_it_is_read_reads_the_newest_left(trained, monkeypatch):
    real_restore = checkpoint.Checkpoints.restore

    def restore_after_a_save_deleted_it(self, abstract_state, sharding, step=None):
        if step == 4:  # a trainer with keep=1 deletes step 4 as sample reads it
            shutil.rmtree(self.directory / "4")
            raise KeyError("state")
        return real_restore(self, abstract_state, sharding, step)

    monkeypatch.setattr(checkpoint.Checkpoints, "restore", restore_after_a_save_deleted_it)
    _, state = sample.restore_workdir(str(trained))
    assert int(state.step) == 2


# --- 17.10: the lock survives deleting .lock; replayed steps appear once in metrics.jsonl and
# TensorBoard ---

def test_deleting_the_lock_file_does_not_free_the_workdir(tiny_config_file, tmp_path):
    with exclusive(tmp_path):
        (tmp_path / ".lock").unlink()
        with pytest.raises(WorkdirBusyError, match="pid unknown"):
            with exclusive(tmp_path):
                pass
        proc = run_module("gan_jax.train", f"--workdir={tmp_path}", f"--config={tiny_config_file}")
    assert one_line_error(proc) == (
        f"error: workdir {tmp_path} is in use by another training process (pid unknown); "
        "wait for it to finish or use another --workdir")
    assert not (tmp_path / "checkpoints").exists()


def test_replayed_steps_are_logged_once(tiny_config, one_device, tmp_path):
    tiny_config.train.log_every_steps = 1
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    shutil.rmtree(tmp_path / "checkpoints" / "4")  # as if killed after step 4 was logged
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "d_lo')  # and in the middle of a line
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    shown = tensorboard_scalars(tmp_path / "tensorboard", "d_loss")
    assert [step for step, _ in shown] == [1, 2, 3, 4]
    assert [value for _, value in shown] == pytest.approx([r["d_loss"] for r in logged], rel=1e-6)


def tensorboard_scalars(logdir, tag):
    """[(step, value)] of `tag` as TensorBoard shows them: the event files in the order they
    were written, a SessionLog START at step s hiding the earlier events of steps >= s (the
    restart rule of tensorboard's event_accumulator)."""
    from tensorboardX.proto import event_pb2

    shown = []
    for path in sorted(logdir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime_ns):
        data, i = path.read_bytes(), 0
        while i < len(data):  # TFRecords: length (8 bytes), its CRC (4), event, its CRC (4)
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            if event.session_log.status == event_pb2.SessionLog.START:
                shown = [(step, value) for step, value in shown if step < event.step]
            shown += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return shown


def test_lock_falls_back_to_the_lock_file_where_folders_cannot_be_locked(tmp_path, monkeypatch):
    real_flock = fcntl.flock

    def nfs_flock(fd, operation):  # NFS: an exclusive flock needs a file open for writing
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    with exclusive(tmp_path):
        with pytest.raises(WorkdirBusyError, match=f"pid {os.getpid()}\\)"):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):  # released
        pass


def test_checkpoint_without_ema_statistics_starts_them_from_the_generator(tiny_config, one_device):
    """A checkpoint from before the EMA generator kept its own collections restores with
    ema_state = a copy of g_state (and says so); nothing else differs."""
    from gan_jax.train import _carry_over

    run = run_lib.build_run(tiny_config, one_device)
    abstract = run.abstract_state()
    saved = {k: v for k, v in checkpoint.state_layout(abstract).items()
             if not k.startswith("ema_state/")}
    with pytest.warns(RuntimeWarning, match="starting ema_state from the generator of checkpoint "
                                            "step 7"):
        target, convert = _carry_over(abstract, saved, 7, checkpoints=None)  # only named in errors
    assert target.ema_state is None and target.ema_params is not None
    state = convert(run.init_state().replace(ema_state=None))
    for a, b in zip(jax.tree.leaves(state.g_state), jax.tree.leaves(state.ema_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(state.ema_state) == jax.tree.structure(state.g_state)
