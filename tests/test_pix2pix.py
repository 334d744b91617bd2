"""pix2pix end to end: the task's losses, {'a', 'b'} batches from the pipeline, training through
train.py (determinism, resume, device count), recipes and bad inputs."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import run_module
from gan_jax import evaluate, losses, optim
from gan_jax.checkpoint import Checkpoints
from gan_jax.config import ConfigError
from gan_jax.data.image_pairs import PairSource, UnpairedSources
from gan_jax.data.pipeline import BatchIterator, batch_indices, domain_seed, example_batch
from gan_jax.data.sources import ArraySource
from gan_jax.metrics import reference
from gan_jax.tasks.pix2pix import Pix2PixTask
from gan_jax.train import train_and_evaluate


# --- the task's losses ------------------------------------------------------------------------

class ScaleG(nn.Module):
    """G(x) = w * x, w = 0.5."""

    paper_test_time: bool = True

    @nn.compact
    def __call__(self, x, train):
        return self.param("w", nn.initializers.constant(0.5), ()) * x


class MeanD(nn.Module):
    """D(x) = v * mean over channels, v = 2: one logit per pixel."""

    @nn.compact
    def __call__(self, x, train):
        return self.param("v", nn.initializers.constant(2.0), ()) * jnp.mean(x, axis=-1)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_losses_match_hand_computation():
    """A = 0.4, B = -0.2 everywhere: G(A) = 0.2; D's logits are 2 * mean(A, B) = 0.2 on the real
    pair and 2 * mean(A, G(A)) = 0.6 on the fake one; the L1 term is |0.2 - (-0.2)| = 0.4."""
    task = Pix2PixTask(ScaleG(), MeanD(), losses.LOSSES["non_saturating"], crop_size=4)
    g_vars, d_vars = task.init(jax.random.key(0), (4, 4, 3))
    batch = {"a": jnp.full((2, 6, 6, 3), 0.4), "b": jnp.full((2, 6, 6, 3), -0.2)}
    keys = jax.random.split(jax.random.key(1), 2)
    d_loss, (_, d_metrics) = task.discriminator_loss(
        d_vars["params"], {}, g_vars["params"], {}, batch, keys, jnp.array(0), {})
    g_loss, (_, g_metrics) = task.generator_loss(
        g_vars["params"], {}, d_vars["params"], {}, batch, keys, jnp.array(0), {})
    # backward_D: 0.5 * (BCE(D(fake), 0) + BCE(D(real), 1)); backward_G: BCE(D(fake), 1) + 100 L1
    np.testing.assert_allclose(d_loss, 0.5 * (softplus(0.6) + softplus(-0.2)), rtol=1e-6)
    np.testing.assert_allclose(d_metrics["d_real"], 0.2, rtol=1e-6)
    np.testing.assert_allclose(d_metrics["d_fake"], 0.6, rtol=1e-6)
    np.testing.assert_allclose(g_metrics["l1"], 0.4, rtol=1e-6)
    np.testing.assert_allclose(g_loss, softplus(-0.6) + 100 * 0.4, rtol=1e-6)
    out = task.translate(g_vars["params"], {}, batch["a"], keys)
    np.testing.assert_allclose(out, 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="pix2pix translates a2b only, got direction 'b2a'"):
        task.translate(g_vars["params"], {}, batch["a"], keys, direction="b2a")


@pytest.mark.slow  # 50 s at load 15 on 2 cores (not measured on a quiet machine)
def test_resnet_generator_draws_dropout_from_each_images_key():
    """model.generator resnet_6blocks with model.dropout (the reference's pix2pix default, once
    refused here): at the paper's test time image i's output depends on it and keys[i] alone."""
    from gan_jax import config as config_lib
    from gan_jax.tasks import build_task

    config = importlib.import_module("gan_jax.configs.facades_pix2pix").get_config()
    m = config.model
    config.data.resolution, m.generator, m.ngf, m.discriminator, m.n_layers = (
        8, "resnet_6blocks", 2, "n_layers", 1)
    assert config.model.dropout and config.model.paper_test_time
    config_lib.validate(config)
    task = build_task(config)
    g_vars, _ = jax.jit(task.init, static_argnums=1)(jax.random.key(0), (8, 8, 3))
    state = {k: v for k, v in g_vars.items() if k != "params"}
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3), minval=-1, maxval=1)
    keys = jax.random.split(jax.random.key(2), 2)
    translate = jax.jit(lambda x, k: task.translate(g_vars["params"], state, x, k))
    both = translate(x, keys)
    np.testing.assert_allclose(both[1:], translate(x[1:], keys[1:]), atol=1e-6)
    assert np.abs(translate(x, keys[::-1])[1] - both[1]).max() > 1e-3


def test_gan_weight_zero_leaves_100_l1_and_the_d_step():
    """gan_weight 0 (the L1-only ablation): G's loss is 100 * L1 = 40 exactly, D's loss, metrics
    and collections are those of the recipe's task."""
    batch = {"a": jnp.full((2, 6, 6, 3), 0.4), "b": jnp.full((2, 6, 6, 3), -0.2)}
    keys = jax.random.split(jax.random.key(1), 2)
    tasks = [Pix2PixTask(ScaleG(), MeanD(), losses.LOSSES["non_saturating"], crop_size=4,
                         gan_weight=w) for w in (1.0, 0.0)]
    g_vars, d_vars = tasks[0].init(jax.random.key(0), (4, 4, 3))
    d_steps = [t.discriminator_loss(d_vars["params"], {}, g_vars["params"], {}, batch, keys,
                                    jnp.array(0), {}) for t in tasks]
    jax.tree.map(np.testing.assert_array_equal, *d_steps)
    g_loss, (_, metrics) = tasks[1].generator_loss(
        g_vars["params"], {}, d_vars["params"], {}, batch, keys, jnp.array(0), {})
    np.testing.assert_allclose(g_loss, 100 * 0.4, rtol=1e-6)
    np.testing.assert_allclose(metrics["g_gan"], softplus(-0.6), rtol=1e-6)  # still logged
    grads = jax.grad(lambda p: tasks[1].generator_loss(p, {}, d_vars["params"], {}, batch, keys,
                                                       jnp.array(0), {})[0])(g_vars["params"])
    # d(100 * mean|w * A - B|)/dw = 100 * A * sign(w * A - B) = 100 * 0.4
    np.testing.assert_allclose(grads["w"], 40.0, rtol=1e-6)


def test_constant_linear_schedule():
    """--lr_policy linear: full rate for constant_steps, then linearly to 0 over decay_steps."""
    c = importlib.import_module("gan_jax.configs.edges2fashion_pix2pix").get_config().optim.g
    c.constant_steps, c.decay_steps = 4, 4
    schedule = optim.SCHEDULES["constant_linear"](c)
    np.testing.assert_allclose([schedule(s) for s in (0, 3, 4, 6, 8, 9)],
                               [2e-4, 2e-4, 2e-4, 1e-4, 0.0, 0.0], atol=1e-12)


# --- batches ---------------------------------------------------------------------------------

def _images(values, side=2):
    return np.broadcast_to(np.asarray(values, np.uint8)[:, None, None, None],
                           (len(values), side, side, 1)).copy()


def test_paired_batches_are_aligned_and_resume_bitwise():
    pairs = PairSource("p", _images(np.arange(10)), _images(100 + np.arange(10)))
    with BatchIterator(pairs, 3, 0, 4, 2) as batches:
        unbroken = [next(batches)[1] for _ in range(6)]
    for batch in unbroken:
        assert set(batch) == {"a", "b"} and batch["a"].shape == (2, 4, 2, 2, 1)
        np.testing.assert_array_equal(batch["b"], batch["a"] + 100)
    with BatchIterator(pairs, 3, 4, 4, 2) as batches:
        for step in (4, 5):
            resumed = next(batches)[1]
            for key in ("a", "b"):
                np.testing.assert_array_equal(resumed[key], unbroken[step][key])


def test_unpaired_domains_have_independent_index_streams():
    """A (10 images) and B (7) each follow their own seed's permutation and epochs; process
    columns split the global batch."""
    seed, batch_size = 5, 4
    domains = UnpairedSources("u", ArraySource("a", _images(np.arange(10))),
                              ArraySource("b", _images(100 + np.arange(7))))
    assert example_batch(domains)["a"].shape == (1, 2, 2, 1)
    with BatchIterator(domains, seed, 0, batch_size) as batches:
        got = [next(batches)[1] for _ in range(7)]
    a = np.concatenate([b["a"][0, :, 0, 0, 0] for b in got]).astype(int)
    b = np.concatenate([b["b"][0, :, 0, 0, 0] for b in got]).astype(int) - 100
    expected_a = np.concatenate([batch_indices(domain_seed(seed, 0), s, 10, batch_size)[0]
                                 for s in range(7)])
    expected_b = np.concatenate([batch_indices(domain_seed(seed, 1), s, 7, batch_size)[0]
                                 for s in range(7)])
    np.testing.assert_array_equal(a, expected_a)
    np.testing.assert_array_equal(b, expected_b)
    for epoch in range(4):  # B cycles its own epochs: each run of 7 draws is a permutation
        assert sorted(b[7 * epoch:7 * epoch + 7]) == list(range(7))
    assert sorted(a[:10]) == list(range(10)) and sorted(a[10:20]) == list(range(10))
    assert not np.array_equal(a[:7] % 7, b[:7]) or not np.array_equal(a[7:14] % 7, b[7:14])
    with BatchIterator(domains, seed, 3, batch_size, 1, 1, 2) as second:  # process 1 of 2
        np.testing.assert_array_equal(next(second)[1]["b"], got[3]["b"][:, 2:])
        np.testing.assert_array_equal(next(second)[1]["a"], got[4]["a"][:, 2:])


# --- training through train.py ----------------------------------------------------------------

def _pairs_folder(root, count=8, side=32):
    """`count` side-by-side A|B RGB images: A random, B its negative."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(count):
            a = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i}.png")
    return root


def tiny_pix2pix(data_root, norm="batch"):
    """The facades recipe shrunk: 32 px pairs loaded at 36, U-Net 32, PatchGAN n_layers 1, width 4."""
    config = importlib.import_module("gan_jax.configs.facades_pix2pix").get_config()
    d, m, t = config.data, config.model, config.train
    d.dataset, d.resolution, d.load_size, d.direction = f"pairs:{data_root}", 32, 36, "AtoB"
    m.generator, m.discriminator, m.n_layers, m.norm, m.ngf, m.ndf = "unet_32", "n_layers", 1, norm, 4, 4
    t.batch_size, t.num_steps, t.log_every_steps, t.sample_every_steps = 8, 4, 2, 2
    config.checkpoint.every_steps = 2
    config.sample.num = 3
    for c in (config.optim.g, config.optim.d):
        c.constant_steps, c.decay_steps = 2, 4
    return config


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.tree.map(
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        state))]


def assert_bitwise_equal(x, y):
    for a, b in zip(leaves(x), leaves(y), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # four short runs: about 3.5 min on a loaded 2-core machine
def test_train_is_deterministic_resumes_bitwise_and_writes_grids(tmp_path, one_device):
    config = tiny_pix2pix(_pairs_folder(tmp_path / "pairs"))
    first = train_and_evaluate(config, tmp_path / "first", devices=one_device, progress=False)
    again = train_and_evaluate(config, tmp_path / "again", devices=one_device, progress=False)
    assert_bitwise_equal(first, again)
    config.train.num_steps = 2
    train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    config.train.num_steps = 4
    resumed = train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    assert int(resumed.step) == 4
    assert_bitwise_equal(first, resumed)
    assert "batch_stats" in first.g_state  # G's running averages are written back
    grid = np.asarray(Image.open(tmp_path / "first" / "samples" / "step_0000004.png"))
    assert grid.shape == (3 * 33 + 1, 3 * 33 + 1, 3)  # rows A, G(A), B of 3 test pairs
    test_a = np.asarray(Image.open(tmp_path / "pairs" / "test" / "0.png"))[:, :32]
    np.testing.assert_array_equal(grid[1:33, 1:33], test_a)
    np.testing.assert_array_equal(grid[67:99, 1:33], 255 - test_a)
    assert (tmp_path / "first" / "data.json").read_text() == (
        tmp_path / "again" / "data.json").read_text()


class FirstPixels:
    """Features: each image's first four values (the extractors are tested in test_evaluate)."""

    name, fingerprint = "first_pixels", "v1"

    def __call__(self, images):
        return {"features": images.reshape(len(images), -1)[:, :4].astype(np.float32)}


@pytest.mark.slow  # two short runs: about 2 min on a loaded 2-core machine
def test_training_evaluates_translations_and_keeps_the_best_by_a2b_l1(tmp_path, one_device,
                                                                     monkeypatch):
    """eval.every_steps on pix2pix: the test split's scores (`evaluate`'s TranslationEvaluator)
    in metrics.jsonl and eval/, WORKDIR/best/ at the step with the lowest a2b/l1, and training
    bitwise as without evaluation."""
    monkeypatch.setenv(reference.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(evaluate, "make_extractor", lambda spec, data, log=print: FirstPixels())
    config = tiny_pix2pix(_pairs_folder(tmp_path / "pairs"))
    config.train.sample_every_steps = 0
    plain = train_and_evaluate(config, tmp_path / "plain", devices=one_device, progress=False)
    e = config.eval
    e.every_steps, e.metrics, e.num_samples, e.best_metric = 2, "fid", 4, "a2b/l1"
    e.extractor = "inception"  # replaced by FirstPixels
    state = train_and_evaluate(config, tmp_path / "run", devices=one_device, progress=False)
    assert_bitwise_equal(plain, state)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scores = {x["step"]: {k: v for k, v in x.items() if k.startswith("eval/")}
              for x in lines if "eval/a2b/l1" in x}
    assert sorted(scores) == [2, 4]
    assert set(scores[2]) == {"eval/a2b/l1", "eval/a2b/psnr", "eval/a2b/ssim", "eval/a2b/fid"}
    assert scores[2] != scores[4]
    best = min(scores, key=lambda step: scores[step]["eval/a2b/l1"])
    checkpoints = Checkpoints(tmp_path / "run", subdir="best")
    assert checkpoints.latest_step() == best
    assert checkpoints.restore_metrics(best)["scores"]["a2b/l1"] == scores[best]["eval/a2b/l1"]
    checkpoints.close()
    saved = json.loads((tmp_path / "run" / "eval" / "step_0000004.json").read_text())
    assert saved["num_samples"] == {"a2b": 4} and saved["scores"]["a2b/fid"] == scores[4]["eval/a2b/fid"]


def test_bad_best_metric_is_one_line_naming_the_runs_scores(tmp_path, one_device):
    config = tiny_pix2pix(_pairs_folder(tmp_path / "pairs"))
    config.eval.every_steps, config.eval.metrics, config.eval.best_metric = 2, "fid,kid", "fid"
    with pytest.raises(ConfigError) as info:
        train_and_evaluate(config, tmp_path / "run", devices=one_device, progress=False)
    assert str(info.value) == (
        "config.eval.best_metric: 'fid' is not reported by the image-to-image evaluation of this "
        "run; choose one of a2b/l1, a2b/psnr, a2b/ssim, a2b/fid, a2b/kid or ''")
    config.eval.best_metric = "a2b/l1"  # valid; but the data has no labels for a classifier
    with pytest.raises(ConfigError, match=r"^eval.extractor='classifier' needs labels, which the "
                                          r"image-to-image data 'pairs:.*' lacks; use "
                                          r"--extractor=inception$"):
        train_and_evaluate(config, tmp_path / "run", devices=one_device, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # about 5 min on a loaded 2-core machine
def test_eight_devices_match_one_device_with_instance_norm(tmp_path):
    """Per-example crops and dropout keys make the device count invisible (batch norm would couple
    the batch). SGD: Adam turns the float noise of near-zero gradients (biases before instance
    norm) into full-size steps."""
    config = tiny_pix2pix(_pairs_folder(tmp_path / "pairs"), norm="instance")
    config.train.num_steps, config.train.sample_every_steps = 3, 0
    for c in (config.optim.g, config.optim.d):
        c.name, c.learning_rate = "sgd", 0.05
    one = train_and_evaluate(config, tmp_path / "one", devices=jax.devices()[:1], progress=False)
    eight = train_and_evaluate(config, tmp_path / "eight", devices=jax.devices()[:8],
                               progress=False)
    for x, y in zip(leaves(one), leaves(eight), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


# --- recipes ---------------------------------------------------------------------------------

RECIPES = Path(__file__).resolve().parents[1] / "configs"
SOURCE = "junyanz/pytorch-CycleGAN-and-pix2pix models/pix2pix_model.py, options/"


@pytest.mark.parametrize("name, steps, constant", [
    ("facades_pix2pix", 80_000, 40_000),  # 400 images, batch 1, 100 + 100 epochs
    ("maps_pix2pix", 219_200, 109_600),  # 1096 images
    ("edges2fashion_pix2pix", 2_000, 1_000)])
def test_recipes_follow_the_reference(name, steps, constant):
    config = importlib.import_module(f"gan_jax.configs.{name}").get_config()
    m = config.model
    assert (config.loss.name, config.loss.l1_weight) == ("non_saturating", 100.0), SOURCE
    assert (m.norm, m.dropout, m.ngf if name != "edges2fashion_pix2pix" else 64) == (
        "batch", True, 64)
    for c in (config.optim.g, config.optim.d):
        assert (c.name, c.learning_rate, c.b1, c.b2) == ("adam", 2e-4, 0.5, 0.999), SOURCE
        assert (c.schedule, c.constant_steps, c.decay_steps) == (
            "constant_linear", constant, steps - constant)
    assert config.train.num_steps == steps and config.ema.decay == 0.0
    if name != "edges2fashion_pix2pix":
        assert (m.generator, m.discriminator, config.data.load_size, config.data.resolution,
                config.train.batch_size) == ("unet_256", "basic", 286, 256, 1), SOURCE
    assert importlib.import_module(f"gan_jax.configs.facades_pix2pix").get_config(
        ).data.direction == "BtoA"  # scripts/train_pix2pix.sh


# --- bad input -------------------------------------------------------------------------------

def _bad_data(tmp):
    (tmp / "odd" / "train").mkdir(parents=True)
    Image.new("RGB", (65, 32)).save(tmp / "odd" / "train" / "x.png")
    for side, names in (("A", ("x", "y")), ("B", ("x", "z"))):
        (tmp / "ab" / "train" / side).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (32, 32)).save(tmp / "ab" / "train" / side / f"{name}.png")
    (tmp / "no_fashion").mkdir()


@pytest.mark.parametrize("args, message", [
    (["--config.data.dataset=pairs:{tmp}/odd"],
     "error: 1 image(s) in {tmp}/odd/train have an odd width, so they cannot be split into A|B "
     "halves: x.png; crop them to an even width"),
    (["--config.data.dataset=pairs_ab:{tmp}/ab"],
     "error: unmatched image names in {tmp}/ab/train: 1 only in A/ (y); 1 only in B/ (z); every "
     "A/ image needs a B/ image with the same name"),
    (["--config=" + str(RECIPES / "edges2fashion_pix2pix.py"),
      "--config.data.data_dir={tmp}/no_fashion"],
     "error: fashion_mnist file {tmp}/no_fashion/train-images-idx3-ubyte.gz not found; run "
     "'apt-get install dataset-fashion-mnist'"),
    (["--config.model.generator=unet_64"], "error: config.model.generator: 'unet_64' is not one"),
])
def test_bad_input_is_one_line_error(tmp_path, args, message):
    _bad_data(tmp_path)
    config = tmp_path / "tiny.py"
    config.write_text("from gan_jax.configs import facades_pix2pix\n\n"
                      "def get_config():\n    config = facades_pix2pix.get_config()\n"
                      "    config.data.resolution, config.data.load_size = 32, 0\n"
                      "    config.model.generator = 'unet_32'\n"
                      "    config.train.batch_size = 8\n    return config\n")
    workdir = tmp_path / "run"
    args = [a.format(tmp=tmp_path) for a in args]
    config_args = [] if args[0].startswith("--config=") else [f"--config={config}"]
    r = run_module("gan_jax.train", f"--workdir={workdir}", *config_args, *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(message.format(tmp=tmp_path)), last
    assert not workdir.exists()
