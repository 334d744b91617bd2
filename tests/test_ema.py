"""The EMA generator: its params and its own collections are averaged in the step, and sampling
and evaluation use the pair."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import images, run as run_lib, sample
from gan_jax.data.sources import make_source
from gan_jax.evaluate import Evaluator
from gan_jax.train import train_and_evaluate
from gan_jax.train_step import ema_update


def test_ema_update_averages_floats_and_copies_integers():
    new = {"mean": jnp.array([1.0, 2.0]), "count": jnp.array(7, jnp.int32)}
    ema = {"mean": jnp.array([3.0, -2.0]), "count": jnp.array(1, jnp.int32)}
    out = ema_update(new, ema, jnp.float32(0.75))
    np.testing.assert_allclose(out["mean"], [0.75 * 3 + 0.25 * 1, 0.75 * -2 + 0.25 * 2], rtol=1e-7)
    assert out["count"].dtype == jnp.int32 and int(out["count"]) == 7
    copied = ema_update(new, ema, jnp.float32(0.0))  # before ema.start_step: a copy
    np.testing.assert_array_equal(copied["mean"], new["mean"])


def _stats(collections):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(collections))]


def test_step_averages_the_batchnorm_statistics_with_the_params(tiny_config, one_device,
                                                                tmp_path):
    """ema.start_step=1, decay 0.9: step 0 copies G's statistics, step 1 averages them."""
    tiny_config.train.num_steps = 1
    first = train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    for e, g in zip(_stats(first.ema_state), _stats(first.g_state)):
        np.testing.assert_array_equal(e, g)
    tiny_config.train.num_steps = 2
    second = train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    assert jax.tree.structure(second.ema_state) == jax.tree.structure(second.g_state)
    for e, old, new in zip(_stats(second.ema_state), _stats(first.g_state),
                           _stats(second.g_state)):
        np.testing.assert_allclose(e, 0.9 * old + 0.1 * new, rtol=1e-5, atol=1e-7)
        assert not np.allclose(e, new)


def test_sampling_uses_the_ema_generators_own_statistics(tiny_config, one_device, tmp_path):
    state = train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    task = run_lib.build_run(tiny_config, one_device).task
    keys = sample.latent_keys(0, 0, 8)
    manual = images.to_uint8(task.sample(state.ema_params, state.ema_state, keys, state.step))
    np.testing.assert_array_equal(sample.generate_images(task, state, 8, seed=0), manual)
    live_stats = images.to_uint8(task.sample(state.ema_params, state.g_state, keys, state.step))
    assert not np.array_equal(manual, live_stats)


class Recorder:
    """Features = the first pixels; remembers the last images it was given."""

    name, fingerprint = "recorder", "v1"

    def __call__(self, images):
        self.images = images
        return {"features": images.reshape(len(images), -1).astype(np.float32)[:, :4]}


def test_evaluate_scores_the_ema_or_the_raw_generator(tiny_config, one_device, tmp_path):
    state = train_and_evaluate(tiny_config, tmp_path, devices=one_device, progress=False)
    task = run_lib.build_run(tiny_config, one_device).task
    source = make_source("digits", 8, 1)
    results, samples = {}, {}
    for generator in ("ema", "raw"):
        recorder = Recorder()
        evaluator = Evaluator(tiny_config, recorder, ("fid",), 8, generator, source)
        results[generator] = evaluator(task, state)["generator"]
        samples[generator] = recorder.images
    assert results == {"ema": "ema", "raw": "raw"}
    np.testing.assert_array_equal(samples["ema"], sample.generate_images(task, state, 8, 0))
    raw = images.to_uint8(task.sample(state.g_params, state.g_state,
                                      sample.latent_keys(0, 0, 8), state.step))
    np.testing.assert_array_equal(samples["raw"], raw)


def test_ema_start_weight_and_the_note_for_too_slow_an_ema(tiny_config):
    from gan_jax.config import ema_start_note, ema_start_weight

    tiny_config.ema.decay, tiny_config.ema.start_step, tiny_config.train.num_steps = 0.99, 200, 1000
    assert ema_start_weight(tiny_config) == pytest.approx(0.99 ** 800)  # 3.2e-4
    assert ema_start_note(tiny_config) is None
    tiny_config.ema.decay = 0.999  # the augmentation experiment's first cGAN: 45 %
    assert ema_start_weight(tiny_config) == pytest.approx(0.4491, abs=1e-4)
    assert ema_start_note(tiny_config) == (
        "note: ema.decay 0.999 from ema.start_step 200 leaves the step-200 generator 45% of the "
        "EMA generator at step 1000; for a run this short use a smaller ema.decay or a later "
        "ema.start_step")
    tiny_config.ema.decay = 0.0
    assert ema_start_weight(tiny_config) == 0.0 and ema_start_note(tiny_config) is None
    tiny_config.ema.decay, tiny_config.ema.start_step = 0.999, 1000  # starts at the last step
    assert ema_start_weight(tiny_config) == 0.0


def test_no_shipped_recipe_keeps_much_of_its_start_generator():
    """Every config in configs/: at its last step the EMA generator weighs the generator it started
    from by at most EMA_START_WEIGHT_LIMIT (digits_biggan and digits_sngan once kept 16.5 %)."""
    import importlib.util
    import pkgutil
    from pathlib import Path

    import gan_jax.configs
    from gan_jax.config import EMA_START_WEIGHT_LIMIT, ema_start_weight

    names = [m.name for m in pkgutil.iter_modules(gan_jax.configs.__path__) if m.name != "base"]
    assert len(names) > 30
    heavy = {name: ema_start_weight(importlib.import_module(f"gan_jax.configs.{name}").get_config())
             for name in names}
    # and the augmentation experiment's cGAN (whose first version kept 45 %)
    path = Path(__file__).parents[1] / "experiments" / "augmentation" / "cgan.py"
    spec = importlib.util.spec_from_file_location("cgan", path)
    cgan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cgan)
    for dataset in ("digits:train", "fashion_mnist:train"):
        heavy[f"cgan {dataset}"] = ema_start_weight(cgan.get_config(dataset))
    assert {n: w for n, w in heavy.items() if w > EMA_START_WEIGHT_LIMIT} == {}
