"""End-to-end training: determinism, exact resume, device-count invariance, files written."""

import dataclasses
import json
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from gan_jax import config as config_lib
from gan_jax import parallel, run as run_lib, tasks
from gan_jax.images import to_float as images_float
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import make_source
from gan_jax.train import train_and_evaluate


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
        (state.g_params, state.d_params, state.g_state, state.d_state, state.g_opt_state,
         state.d_opt_state, state.ema_params, state.ema_state, state.skipped)))]


def assert_bitwise_equal(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def test_same_seed_gives_bitwise_identical_state(tiny_config, one_device, tmp_path):
    a = train_and_evaluate(tiny_config, tmp_path / "a", devices=one_device, progress=False)
    b = train_and_evaluate(tiny_config, tmp_path / "b", devices=one_device, progress=False)
    assert int(a.step) == 4
    assert_bitwise_equal(a, b)
    tiny_config.train.seed = 1
    c = train_and_evaluate(tiny_config, tmp_path / "c", devices=one_device, progress=False)
    assert not np.array_equal(leaves(a)[0], leaves(c)[0])


def test_resume_equals_unbroken_run(tiny_config, one_device, tmp_path):
    tiny_config.train.n_critic = 2
    unbroken = train_and_evaluate(tiny_config, tmp_path / "unbroken", devices=one_device,
                                  progress=False)
    tiny_config.train.num_steps = 2
    first = train_and_evaluate(tiny_config, tmp_path / "resumed", devices=one_device,
                               progress=False)
    assert int(first.step) == 2
    tiny_config.train.num_steps = 4  # raising num_steps continues the run
    resumed = train_and_evaluate(tiny_config, tmp_path / "resumed", devices=one_device,
                                 progress=False)
    assert int(resumed.step) == 4
    assert_bitwise_equal(unbroken, resumed)
    assert jax.random.key_data(resumed.key).tolist() == jax.random.key_data(unbroken.key).tolist()


@pytest.mark.parametrize("norm, cross_replica, optimizer", [  # one in the default suite
    pytest.param("none", False, "sgd", marks=pytest.mark.slow),
    pytest.param("layer", False, "adam", marks=pytest.mark.slow), ("batch", True, "adam")])
def test_eight_devices_match_one_device(tiny_config, tmp_path, norm, cross_replica, optimizer):
    """Per-example keys and pmean-ed grads make the device count invisible to the math.

    SGD is scale-sensitive: it catches gradients summed instead of averaged over devices.
    """
    tiny_config.model.g_norm = tiny_config.model.d_norm = norm
    if norm == "batch":
        tiny_config.loss.r1_weight = 0.0  # the default's R1 needs a per-example D
    tiny_config.model.cross_replica_bn = cross_replica
    tiny_config.optim.g.name = tiny_config.optim.d.name = optimizer
    tiny_config.optim.g.learning_rate = tiny_config.optim.d.learning_rate = 0.05
    tiny_config.train.num_steps = 3
    one = train_and_evaluate(tiny_config, tmp_path / "one", devices=jax.devices()[:1],
                             progress=False)
    eight = train_and_evaluate(tiny_config, tmp_path / "eight", devices=jax.devices()[:8],
                               progress=False)
    for x, y in zip(leaves(one), leaves(eight)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


def test_per_device_batch_norm_differs_from_one_device(tiny_config, tmp_path):
    """Guards the test above: without cross-replica BN, 8 devices see 8 batch statistics."""
    tiny_config.train.num_steps = 2
    one = train_and_evaluate(tiny_config, tmp_path / "one", devices=jax.devices()[:1],
                             progress=False)
    eight = train_and_evaluate(tiny_config, tmp_path / "eight", devices=jax.devices()[:8],
                               progress=False)
    assert max(np.max(np.abs(x - y)) for x, y in zip(leaves(one), leaves(eight))) > 1e-4


def test_workdir_contents(tiny_config, one_device, tmp_path):
    tiny_config.train.sample_every_steps = 2
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 4
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["packages"]["jax"] == jax.__version__ and env["devices"]
    assert env["cpu"]["isa"] in ("avx512", "avx2", "avx", "other") and env["cpu"]["cores"] >= 1
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "img_per_s"} <= set(lines[0])
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_0000002.png", "step_0000004.png"]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                  if p.name.isdigit()) == [2, 4]


def test_checkpoint_keep_limits_saved_steps(tiny_config, one_device, tmp_path):
    tiny_config.train.num_steps = 8
    tiny_config.checkpoint.every_steps = 1
    tiny_config.checkpoint.keep = 2
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                  if p.name.isdigit()) == [7, 8]


def test_resume_with_changed_math_is_refused_unless_allowed(tiny_config, one_device, tmp_path):
    tiny_config.train.num_steps = 2
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    tiny_config.train.num_steps = 4
    tiny_config.optim.d.learning_rate = 1e-3
    with pytest.raises(config_lib.ConfigError,
                       match=r"optim\.d\.learning_rate: 0\.0002 -> 0\.001.*allow_config_change"):
        train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    tiny_config.allow_config_change = True
    state = train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert int(state.step) == 4


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(tiny_config, one_device, tmp_path):
    tiny_config.train.num_steps = 2
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    tiny_config.train.num_steps = 4
    tiny_config.optim.g.learning_rate = 1e30
    tiny_config.optim.d.learning_rate = 1e30
    tiny_config.allow_config_change = True
    with pytest.raises(FloatingPointError, match=r"non-finite values at step 4: .*checkpoint: step 2"):
        train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                  if p.name.isdigit()) == [2]


@dataclasses.dataclass(frozen=True)
class PoisonedTask(tasks.ImageGANTask):
    """Multiplies D's loss by NaN on the real batch whose labels are `poison`: NaN grads, params."""

    poison: tuple = ()

    def discriminator_loss(self, d_params, d_state, g_params, g_state, batch, keys, step,
                           task_state):
        loss, aux = super().discriminator_loss(d_params, d_state, g_params, g_state, batch, keys,
                                               step, task_state)
        hit = jnp.all(batch["label"] == jnp.array(self.poison))
        return loss * jnp.where(hit, jnp.nan, 1.0), aux


def _batches(config, start):
    d = config.data
    source = make_source(d.name, d.resolution, d.channels)
    return BatchIterator(source, config.train.seed, start, config.train.batch_size,
                         config.train.n_critic, 0, 1)


def _poison_step(monkeypatch, config, step):
    """Make the real batch of `step` (0-based) give a NaN D loss in runs built from now on."""
    with _batches(config, step) as batches:
        labels = tuple(int(x) for x in next(batches)[1]["label"][0])
    monkeypatch.setattr(run_lib, "build_task", lambda c: PoisonedTask(
        **{f.name: getattr(tasks.build_task(c), f.name)
           for f in dataclasses.fields(tasks.ImageGANTask)}, poison=labels))


def test_non_finite_step_stops_naming_it(tiny_config, one_device, tmp_path, monkeypatch):
    tiny_config.train.log_every_steps = 1
    _poison_step(monkeypatch, tiny_config, 2)
    with pytest.raises(FloatingPointError, match=r"non-finite values at step 3: g_loss=nan, updated "
                                                 r"params; last good checkpoint: step 2 .*skip"):
        train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                  if p.name.isdigit()) == [2]


def test_skip_mode_skips_exactly_the_non_finite_step(tiny_config, one_device, tmp_path,
                                                      monkeypatch):
    tiny_config.train.n_critic = 2
    reference_run = run_lib.build_run(tiny_config, one_device)  # unpoisoned
    step_fn = reference_run.train_step()
    expected = reference_run.init_state()
    with _batches(tiny_config, 0) as batches:
        for step in range(4):
            batch = parallel.put_batch(next(batches)[1], reference_run.mesh)
            if step == 2:
                expected = expected.replace(step=expected.step + 1, skipped=expected.skipped + 1)
            else:
                expected, _ = step_fn(expected, batch)

    tiny_config.train.log_every_steps = 1
    tiny_config.train.on_nonfinite = "skip"
    _poison_step(monkeypatch, tiny_config, 2)
    with pytest.warns(RuntimeWarning, match=r"1 of steps 3\.\.3 had a non-finite loss or param "
                                             r"and were skipped \(1 in all\)"):
        state = train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert int(state.skipped) == 1 and int(state.step) == 4
    assert_bitwise_equal(state, expected)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in logged] == [0, 0, 1, 1]

    tiny_config.train.num_steps = 8  # a resumed run keeps the count and stops past the budget
    tiny_config.train.max_skipped_steps = 0
    with pytest.raises(FloatingPointError, match=r"1 steps were skipped .* more than "
                                                 r"train\.max_skipped_steps=0; last good checkpoint: step 4"):
        train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)


def test_skip_mode_logs_the_means_of_the_applied_steps(tiny_config, one_device, tmp_path,
                                                       monkeypatch):
    """A logging interval holding a skipped step logs its other steps' means, not NaN."""
    reference_run = run_lib.build_run(tiny_config, one_device)  # unpoisoned
    step_fn = reference_run.train_step()
    state, d_losses = reference_run.init_state(), []
    with _batches(tiny_config, 0) as batches:
        for step in range(4):
            batch = parallel.put_batch(next(batches)[1], reference_run.mesh)
            if step == 2:
                state = state.replace(step=state.step + 1, skipped=state.skipped + 1)
            else:
                state, metrics = step_fn(state, batch)
                d_losses.append(float(metrics["d_loss"]))

    tiny_config.train.on_nonfinite = "skip"  # logs at steps 2 and 4: the second holds step 3
    _poison_step(monkeypatch, tiny_config, 2)
    with pytest.warns(RuntimeWarning, match=r"1 of steps 3\.\.4 had a non-finite loss"):
        train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["skipped"]) for r in logged] == [(2, 0), (4, 1)]
    assert logged[0]["d_loss"] == pytest.approx((d_losses[0] + d_losses[1]) / 2, rel=1e-6)
    assert logged[1]["d_loss"] == d_losses[2]  # step 4's alone


def _corrupt(step_dir, how):
    files = sorted((p for p in (step_dir / "state").rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)
    if how == "truncated":
        for p in files:
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif how == "missing":
        for p in files:
            if p.name in ("manifest.ocdbt", "_METADATA"):
                p.unlink()
    elif how == "garbage":
        rng = np.random.default_rng(0)
        for p in files:
            p.write_bytes(rng.integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("how", ["truncated", "missing", "garbage"])
def test_unreadable_newest_checkpoint_falls_back_and_keeps_it(tiny_config, one_device, tmp_path,
                                                               how):
    unbroken = train_and_evaluate(tiny_config, tmp_path / "unbroken", devices=one_device,
                                  progress=False)
    workdir = tmp_path / "damaged"
    train_and_evaluate(tiny_config, workdir, devices=one_device, progress=False)
    _corrupt(workdir / "checkpoints" / "4", how)
    with pytest.warns(RuntimeWarning, match=r"checkpoint step 4 is unreadable .*4\.unreadable"):
        resumed = train_and_evaluate(tiny_config, workdir, devices=one_device, progress=False)
    assert (workdir / "checkpoints" / "4.unreadable").is_dir()  # kept for inspection
    assert (workdir / "checkpoints" / "4").is_dir()  # rewritten by the resumed run
    assert_bitwise_equal(unbroken, resumed)


def test_lazy_r1_runs_every_r1_every_steps(tiny_config, one_device, tmp_path):
    tiny_config.model.d_norm = "none"
    tiny_config.loss.r1_weight, tiny_config.loss.r1_every = 1.0, 2
    tiny_config.train.log_every_steps = 1
    train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    r1 = {l["step"]: l["r1"] for l in lines}  # logged after the step: step k ran at index k - 1
    assert r1[1] > 0 and r1[3] > 0 and r1[2] == 0 and r1[4] == 0  # indices 0, 2 (NVlabs' rule)


def test_resume_on_changed_folder_data_warns_in_one_line(tiny_config, one_device, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.new("L", (8, 8), 40 * i).save(images / f"{i}.png")
    tiny_config.data.name = f"folder:{images}"
    tiny_config.train.num_steps = 2
    train_and_evaluate(tiny_config, tmp_path / "run", devices=one_device, progress=False)
    recorded = json.loads((tmp_path / "run" / "data.json").read_text())
    assert recorded == {"name": f"folder:{images}",
                        "sha256": make_source(f"folder:{images}", 8, 1).fingerprint()}
    tiny_config.train.num_steps = 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unchanged data: no warning
        train_and_evaluate(tiny_config, tmp_path / "run", devices=one_device, progress=False)
    Image.new("L", (8, 8), 255).save(images / "4.png")
    tiny_config.train.num_steps = 6
    with pytest.warns(RuntimeWarning, match=rf"^the data set folder:{images} differs from the one "
                                            rf"this workdir was trained on \(content sha256 "
                                            rf"{recorded['sha256'][:12]} -> [0-9a-f]{{12}}\); "
                                            rf"training goes on with the new data$"):
        train_and_evaluate(tiny_config, tmp_path / "run", devices=one_device, progress=False)


@pytest.mark.slow  # 8 devices, 1 min at load 5
def test_generator_batch_size_is_device_count_invariant(tiny_config, tmp_path):
    """train.g_batch_size fakes in the G step, keyed by global index: 1 device == 8 devices, and
    the run differs from one with G on batch_size fakes."""
    tiny_config.model.g_norm = tiny_config.model.d_norm = "layer"
    tiny_config.train.num_steps = 2
    tiny_config.train.g_batch_size = 32
    one = train_and_evaluate(tiny_config, tmp_path / "one", devices=jax.devices()[:1],
                             progress=False)
    eight = train_and_evaluate(tiny_config, tmp_path / "eight", devices=jax.devices()[:8],
                               progress=False)
    for x, y in zip(leaves(one), leaves(eight)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)
    tiny_config.train.g_batch_size = 0
    same_as_d = train_and_evaluate(tiny_config, tmp_path / "b", devices=jax.devices()[:1],
                                   progress=False)
    assert not np.array_equal(leaves(one)[0], leaves(same_as_d)[0])


def _one_step(config, state_step):
    """(run, state before, state after, batch) of one compiled step at `state_step`, 1 device."""
    run = run_lib.build_run(config, jax.devices()[:1])
    state = run.init_state().replace(step=jnp.int32(state_step))
    with _batches(config, state_step) as batches:
        batch = parallel.put_batch(next(batches)[1], run.mesh)
    after, _ = run.train_step(donate=False)(state, batch)
    return run, state, after, batch


def _keys(step_key, purpose, n):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(step_key, purpose), i))(
        jnp.arange(n))


def test_separate_lazy_r1_is_a_second_adam_update_on_the_r1_term(tiny_config):
    """loss.r1_mode='separate': on an R1 step D takes its main Adam update, then one on
    gamma/2 * k * R1 (NVlabs' Dmain then Dreg, one optimizer), composed here by hand."""
    tiny_config.model.d_norm = "none"
    tiny_config.loss.r1_weight, tiny_config.loss.r1_every = 1.0, 2
    tiny_config.loss.r1_mode = "separate"
    run, state, after, batch = _one_step(tiny_config, 2)  # 2 % 2 == 0: an R1 step
    task, tx = run.task, run.d_tx
    step_key = jax.random.fold_in(state.key, state.step)
    sub_batch = jax.tree.map(lambda x: images_float(x[0]), jax.device_get(batch))
    grads, (writes, _) = jax.jit(jax.grad(task.discriminator_loss, has_aux=True))(
        state.d_params, state.d_state, state.g_params, state.g_state, sub_batch,
        _keys(step_key, 0, 16), state.step, state.task_state)
    d_state = writes["d_state"]

    @jax.jit
    def adam(grads, opt, params):
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    d_params, opt = adam(grads, state.d_opt_state, state.d_params)
    grads, _ = jax.jit(jax.grad(task.r1_loss, has_aux=True))(d_params, d_state, sub_batch,
                                                              _keys(step_key, 2, 16), state.step,
                                                              state.task_state)
    expected, opt = adam(grads, opt, d_params)
    for x, y in zip(jax.tree.leaves(after.d_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    assert int(after.d_opt_state[0].count) == 2  # two Adam updates on this step
    _, _, off_step, _ = _one_step(tiny_config, 1)
    assert int(off_step.d_opt_state[0].count) == 1
    tiny_config.loss.r1_mode = "folded"
    _, _, folded, _ = _one_step(tiny_config, 2)
    assert int(folded.d_opt_state[0].count) == 1  # R1 inside the one main update


HEAVY_MODULES = ("tensorflow", "tensorflow_datasets", "sklearn", "scipy", "torch", "tensorboardX")


def test_importing_train_loads_no_heavy_optional_module():
    # Start-up time: each would cost every start 0.3 s (tensorboardX) to seconds (tensorflow);
    # they are imported where they are used.
    code = ("import sys, gan_jax.train; print(sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({HEAVY_MODULES!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert out.strip() == "[]"


def test_host_isa_reads_the_widest_vector_flag():
    """The ISA XLA:CPU's kernel libraries dispatch on (environment.json, the digest test)."""
    from gan_jax.train import cpu_model, host_isa

    info = "processor\t: 0\nmodel name\t: Some CPU @ 2GHz\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert host_isa(info) == "avx2" and cpu_model(info) == "Some CPU @ 2GHz"
    assert host_isa(info.replace("avx2", "avx2 avx512f avx512bw")) == "avx512"
    assert host_isa(info.replace(" avx avx2", "")) == "other"
    assert host_isa("") == "other" and cpu_model("") is None
