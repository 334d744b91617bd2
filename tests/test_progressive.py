"""Progressive growing: the step -> (level, alpha) schedule, the per-level networks, and training
through the real loop (inactive levels frozen, exact resume in the middle of a fade-in)."""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gan_jax import config as config_lib
from gan_jax import parallel, run as run_lib
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import make_source
from gan_jax.models.progressive import (ProgressiveDiscriminator, ProgressiveGenerator,
                                        downsample, upsample)
from gan_jax.tasks.progressive import Schedule, fade_images
from gan_jax.train import train_and_evaluate
from test_train import assert_bitwise_equal

CONFIG_FILE = Path(__file__).parents[1] / "configs" / "digits_progressive.py"
RES, LEVELS = 16, (4, 8, 16)


def tiny_config():
    """digits_progressive at 8 px (4 -> 8), 2 stable and 4 fade-in steps, a few channels."""
    config = load_config(CONFIG_FILE)
    config.data.resolution = 8
    p = config.progressive
    p.stable_steps, p.fade_steps = 2, 4
    p.fmap_base, p.fmap_max = 32, 16
    config.model.latent_dim = 8
    config.train.batch_size = 8
    config.train.num_steps = 8
    config.train.log_every_steps = 1
    config.train.sample_every_steps = 0
    config.checkpoint.every_steps = 100
    config.ema.start_step = 1
    config.ema.decay = 0.9
    config.sample.num = 4
    config.eval.every_steps = 0
    return config


# --- schedule --------------------------------------------------------------------------------

def test_schedule_values_at_phase_boundaries():
    schedule = Schedule(num_levels=3, fade_steps=4, stable_steps=2)
    got = [(int(l), float(a)) for l, a in (schedule(s) for s in range(14))]
    assert got == [(0, 1.0), (0, 1.0),                                # 4 px: stable only
                   (1, 0.0), (1, 0.25), (1, 0.5), (1, 0.75),          # 8 px fades in
                   (1, 1.0), (1, 1.0),                                # 8 px stable
                   (2, 0.0), (2, 0.25), (2, 0.5), (2, 0.75),          # 16 px fades in
                   (2, 1.0), (2, 1.0)]                                # 16 px on to the end
    assert [schedule.phase_start(l) for l in range(3)] == [0, 2, 8]
    level, alpha = jax.jit(schedule)(jnp.int32(10 ** 9))
    assert (int(level), float(alpha)) == (2, 1.0)
    no_fade = Schedule(num_levels=3, fade_steps=0, stable_steps=3)
    assert [(int(l), float(a)) for l, a in (no_fade(s) for s in (2, 3, 5, 6))] == [
        (0, 1.0), (1, 1.0), (1, 1.0), (2, 1.0)]
    one_level = Schedule(num_levels=1, fade_steps=4, stable_steps=2)
    assert [(int(l), float(a)) for l, a in (one_level(s) for s in (0, 5, 99))] == [(0, 1.0)] * 3


def test_segments_change_where_pggan_lod_changes_floor_or_ceil():
    """PGGAN resets Adam when floor(lod) or ceil(lod) changes: as a fade-in starts and ends."""
    schedule = Schedule(num_levels=3, fade_steps=4, stable_steps=2)
    assert [int(schedule.segment(s)) for s in range(14)] == [0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3,
                                                             4, 4]
    no_fade = Schedule(num_levels=3, fade_steps=0, stable_steps=3)
    assert [int(no_fade.segment(s)) for s in (2, 3, 5, 6)] == [0, 2, 2, 4]


# --- networks --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nets():
    """G, D (4 -> 8 -> 16 px), their variables and jitted applies g(vars, level, alpha) -> images,
    d(vars, level, alpha) -> logits on fixed inputs."""
    g = ProgressiveGenerator(RES, 1, 4, fmap_base=32, fmap_max=16)
    d = ProgressiveDiscriminator(RES, 4, fmap_base=32, fmap_max=16, mbstd_group_size=4)
    z = jax.random.normal(jax.random.key(0), (8, 8))
    x = jax.random.uniform(jax.random.key(3), (8, RES, RES, 1), minval=-1.0, maxval=1.0)
    g_vars, d_vars = jax.jit(lambda k: (
        g.init(k, z, None, train=False, level=0, alpha=1.0),
        d.init(jax.random.fold_in(k, 1), x, None, train=False, level=0, alpha=1.0)))(
        jax.random.key(1))
    g_apply = jax.jit(lambda v, level, alpha: g.apply(v, z, None, level=level, alpha=alpha))
    d_apply = jax.jit(lambda v, level, alpha, images=x: d.apply(v, images, None, level=level,
                                                                alpha=alpha))
    return g_vars, d_vars, g_apply, d_apply


def test_params_of_every_level_exist_from_init_and_shapes_are_fixed(nets):
    g_vars, d_vars, g, d = nets
    assert {f"to_rgb_{l}" for l in range(3)} <= set(g_vars["params"])
    assert {f"from_rgb_{l}" for l in range(3)} <= set(d_vars["params"])
    assert {"blocks_0", "blocks_1"} <= set(g_vars["params"]) & set(d_vars["params"])
    for level, r in enumerate(LEVELS):
        for alpha in (0.0, 0.5, 1.0):
            images = g(g_vars, level, alpha)
            assert images.shape == (8, RES, RES, 1)
            logits = d(d_vars, level, alpha, images)
            assert logits.shape == (8,) and np.all(np.isfinite(logits))
        # At alpha = 1 the image has the level's resolution (nearest-upsampled to 16 px).
        f = RES // r
        np.testing.assert_array_equal(images, upsample(images[:, ::f, ::f], f))
        if r < RES:
            assert not np.array_equal(images, upsample(images[:, ::2 * f, ::2 * f], 2 * f))


def _perturbed(variables, name):
    params = dict(variables["params"])
    params[name] = jax.tree.map(lambda p: p + 1.0, params[name])
    return {"params": params}


@pytest.mark.parametrize("level", [1, 2])
def test_at_alpha_one_the_previous_to_rgb_is_unused(nets, level):
    g_vars, _, g, _ = nets
    other = _perturbed(g_vars, f"to_rgb_{level - 1}")
    np.testing.assert_array_equal(g(g_vars, level, 1.0), g(other, level, 1.0))
    assert not np.allclose(g(g_vars, level, 0.5), g(other, level, 0.5))


@pytest.mark.parametrize("level", [1, 2])
def test_at_alpha_zero_the_output_is_the_previous_level_upsampled(nets, level):
    g_vars, _, g, _ = nets
    np.testing.assert_array_equal(g(g_vars, level, 0.0), g(g_vars, level - 1, 1.0))
    # ... and the level's new layers are unused then.
    other = _perturbed(g_vars, f"to_rgb_{level}")
    np.testing.assert_array_equal(g(other, level, 0.0), g(g_vars, level, 0.0))


@pytest.mark.parametrize("level", [1, 2])
def test_discriminator_fades_like_the_generator(nets, level):
    _, d_vars, _, d = nets
    np.testing.assert_allclose(d(d_vars, level, 0.0), d(d_vars, level - 1, 1.0),
                               rtol=1e-5, atol=1e-6)  # pooling 4x4 once vs 2x2 twice
    other = _perturbed(d_vars, f"from_rgb_{level - 1}")
    np.testing.assert_array_equal(d(d_vars, level, 1.0), d(other, level, 1.0))
    assert not np.allclose(d(d_vars, level, 0.5), d(other, level, 0.5))


def test_same_inputs_give_the_same_bits(nets):
    g_vars, d_vars, g, d = nets
    np.testing.assert_array_equal(g(g_vars, 1, 0.3), g(g_vars, 1, 0.3))
    np.testing.assert_array_equal(d(d_vars, 2, 0.7), d(d_vars, 2, 0.7))


def test_reals_are_faded_between_the_level_and_the_one_below():
    x = jax.random.uniform(jax.random.key(4), (2, RES, RES, 1))
    at = lambda level, alpha: fade_images(x, jnp.int32(level), jnp.float32(alpha), LEVELS)
    np.testing.assert_array_equal(at(2, 1.0), x)
    np.testing.assert_allclose(at(2, 0.0), upsample(downsample(x, 2), 2), rtol=1e-6)
    np.testing.assert_allclose(at(1, 1.0), upsample(downsample(x, 2), 2), rtol=1e-6)
    np.testing.assert_allclose(at(1, 0.25), 0.25 * at(1, 1.0) + 0.75 * at(0, 1.0), rtol=1e-6)
    np.testing.assert_allclose(at(0, 1.0), upsample(downsample(x, 4), 4), rtol=1e-6)


# --- training --------------------------------------------------------------------------------

INACTIVE_AT_LEVEL_0 = {"g": ("blocks_0", "to_rgb_1"), "d": ("blocks_0", "from_rgb_1")}


def _steps(config, count):
    """(initial state, state after `count` train steps, per-step metrics) of the real step."""
    run = run_lib.build_run(config, jax.devices()[:1])
    step_fn = run.train_step(donate=False)
    d = config.data
    state = first = run.init_state()
    logged = []
    with BatchIterator(make_source(d.name, d.resolution, d.channels), config.train.seed, 0,
                       config.train.batch_size, config.train.n_critic, 0, 1) as batches:
        for _ in range(count):
            state, metrics = step_fn(state, parallel.put_batch(next(batches)[1], run.mesh))
            logged.append({k: float(v) for k, v in parallel.to_host(metrics).items()})
    return first, state, logged


@pytest.mark.slow  # a short training run, 1.5 min at load 5
def test_inactive_levels_get_no_updates_and_d_loss_falls():
    """Level 0 (4 px) trains: the 8 px layers keep their initial values exactly (zero gradients,
    Adam moves nothing), all others move; the critic learns to separate reals from fakes."""
    config = tiny_config()
    config.progressive.stable_steps = 1000
    config.train.batch_size, config.train.n_critic = 16, 2
    first, last, logged = _steps(config, 20)
    assert {(m["level"], m["alpha"]) for m in logged} == {(0.0, 1.0)}
    for net, params in (("g", "g_params"), ("d", "d_params")):
        before, after = getattr(first, params), getattr(last, params)
        for name in before:
            same = [np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[name]),
                                                          jax.tree.leaves(after[name]))]
            assert all(same) if name in INACTIVE_AT_LEVEL_0[net] else not any(same), (net, name)
    d_losses = [m["d_loss"] for m in logged]
    assert np.mean(d_losses[-5:]) < np.mean(d_losses[:5]) - 0.3, d_losses


def test_optimizers_restart_fresh_where_a_fade_in_starts_and_ends():
    """At steps 2 (8 px fades in) and 6 (8 px stable) the step's updates are those of a fresh
    optimizer state, whatever the moments before; on other steps they are not."""
    config = tiny_config()
    run = run_lib.build_run(config, jax.devices()[:1])
    assert [bool(run.task.resets_optimizers(s)) for s in range(9)] == [
        False, False, True, False, False, False, True, False, False]
    step_fn = run.train_step(donate=False)
    d = config.data
    fresh = lambda s: s.replace(g_opt_state=run.g_tx.init(s.g_params),
                                d_opt_state=run.d_tx.init(s.d_params))
    state = run.init_state()
    with BatchIterator(make_source(d.name, d.resolution, d.channels), config.train.seed, 0,
                       config.train.batch_size, config.train.n_critic, 0, 1) as batches:
        for step in range(7):
            batch = parallel.put_batch(next(batches)[1], run.mesh)
            if step in (2, 3, 6):
                after, _ = step_fn(state, batch)
                from_fresh, _ = step_fn(fresh(state), batch)
                same = all(np.array_equal(x, y) for x, y in zip(
                    jax.tree.leaves((after.g_params, after.d_params, after.g_opt_state,
                                     after.d_opt_state)),
                    jax.tree.leaves((from_fresh.g_params, from_fresh.d_params,
                                     from_fresh.g_opt_state, from_fresh.d_opt_state))))
                assert same == (step != 3), step
                if step != 3:
                    assert int(after.g_opt_state[0].count) == 1
                    assert int(after.d_opt_state[0].count) == config.train.n_critic
            state, _ = step_fn(state, batch)


def test_resume_in_the_middle_of_a_fade_in_equals_unbroken_run(tmp_path):
    """Resumed from the checkpoint of step 4 (8 px fading in, alpha 0.5) into the 8 px stable
    phase, across the optimizer reset at step 6: bitwise the unbroken run. (That checkpoint is what a run stopped at step 4 leaves;
    test_train proves stopping there and resuming is the same as continuing.)"""
    config = tiny_config()
    config.train.num_steps = 10
    config.checkpoint.every_steps = 4
    unbroken = train_and_evaluate(config, tmp_path / "unbroken", devices=jax.devices()[:1],
                                  progress=False)
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "unbroken" / "checkpoints" / "4",
                    tmp_path / "resumed" / "checkpoints" / "4")
    resumed = train_and_evaluate(config, tmp_path / "resumed", devices=jax.devices()[:1],
                                 progress=False)
    assert int(resumed.step) == 10
    assert_bitwise_equal(unbroken, resumed)
    logged = {workdir: [(l["step"], l["level"], l["alpha"]) for l in map(
        json.loads, (tmp_path / workdir / "metrics.jsonl").read_text().splitlines())]
        for workdir in ("unbroken", "resumed")}
    # The metrics of step s (logged as s + 1) come from schedule(s).
    assert logged["unbroken"] == [
        (1, 0, 1.0), (2, 0, 1.0), (3, 1, 0.0), (4, 1, 0.25), (5, 1, 0.5), (6, 1, 0.75),
        (7, 1, 1.0), (8, 1, 1.0), (9, 1, 1.0), (10, 1, 1.0)]
    assert logged["resumed"] == logged["unbroken"][4:]


def test_bad_progressive_config_is_refused_naming_the_key():
    config = tiny_config()
    config.progressive.start_resolution = 6
    with pytest.raises(config_lib.ConfigError, match=r"config\.progressive\.start_resolution"):
        config_lib.validate(config)
    config = tiny_config()
    config.progressive.stable_steps = 0
    with pytest.raises(config_lib.ConfigError, match=r"config\.progressive\.stable_steps"):
        config_lib.validate(config)


def test_parameter_counts_at_1024_px_match_the_paper():
    """Karras et al. 2018, appendix A.1, Table 2: G and D of the 1024 px CelebA-HQ network have
    23.1M trainable parameters each (fmap_base 8192, fmap_max 512, z 512)."""
    import numpy as np

    from gan_jax.configs import celeba64_progressive
    from gan_jax.run import build_run

    config = celeba64_progressive.get_config()
    config.data.resolution, config.train.batch_size = 1024, 16
    state = build_run(config, jax.devices()[:1]).abstract_state()
    size = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
    g, d = size(state.g_params), size(state.d_params)
    assert (g, d) == (23_079_115, 23_087_249)  # ours, exactly: both round to the paper's 23.1M
    assert round(g / 1e5) == round(d / 1e5) == 231
