"""Inpainting (gan_jax/tasks/inpainting.py, gan_jax/models/inpainting.py): gated conv,
contextual attention, the composited output, training determinism, resume and device counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_jax.configs import fashion_inpainting
from gan_jax.models.inpainting import (GatedConv, attention_weights, contextual_attention,
                                       resize_nearest, same_padding)
from gan_jax.tasks import build_task
from gan_jax.train import train_and_evaluate


def tiny_inpainting():
    """fashion_inpainting shrunk: 16 px digits, widths 4, four steps."""
    config = fashion_inpainting.get_config()
    config.data.name = "digits"
    config.data.resolution = 16
    config.inpaint.test_data = ""
    config.inpaint.dilations = (2,)
    m, t = config.model, config.train
    m.ngf, m.ndf, m.n_layers = 4, 4, 2
    t.batch_size, t.num_steps, t.log_every_steps, t.sample_every_steps = 8, 4, 2, 4
    config.checkpoint.every_steps = 2
    config.sample.num = 4
    return config


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.random.key_data(state.key))
            + jax.tree.leaves(state.replace(key=None))]


def assert_bitwise_equal(x, y):
    for a, b in zip(leaves(x), leaves(y), strict=True):
        np.testing.assert_array_equal(a, b)


def test_same_padding_is_tensorflows():
    assert same_padding(5, 5, 2) == (2, 2)  # out 3: (3 - 1) * 2 + 5 - 5 = 4
    assert same_padding(4, 5, 2) == (1, 2)  # out 2: 1 * 2 + 5 - 4 = 3, the extra pixel after
    assert same_padding(8, 3, 1, rate=4) == (4, 4)  # dilated extent 9


def test_gated_conv_matches_hand_computation():
    """act(conv_f(x)) * sigmoid(conv_g(x)) with 'SAME' zero padding, computed pixel by pixel."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 2, 2)).astype(np.float32)  # outputs: feature, gate
    bias = np.array([0.3, -0.2], np.float32)
    y = GatedConv(1).apply({"params": {"kernel": kernel, "bias": bias}}, x)
    padded = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    want = np.zeros((4, 5), np.float64)
    for i in range(4):
        for j in range(5):
            f, g = np.einsum("hwc,hwco->o", padded[i:i + 3, j:j + 3], kernel) + bias
            want[i, j] = (f if f > 0 else np.expm1(f)) / (1.0 + np.exp(-g))
    np.testing.assert_allclose(np.asarray(y)[0, ..., 0], want, rtol=1e-5, atol=1e-6)


def reference_attention_weights(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """inpaint_ops.py's `contextual_attention` scores, fuse and softmax, computed by loops over
    flat indices on one example: f (h, w, C) downscaled, m (h, w) -> (h, w, h * w)."""
    h, w, _ = f.shape
    n = h * w
    fp, mp = np.pad(f, ((1, 1), (1, 1), (0, 0))), np.pad(m, 1)
    patches = [fp[i:i + 3, j:j + 3] for i in range(h) for j in range(w)]
    s = np.array([[np.sum(a * b) / max(np.sqrt(np.sum(b * b)), 1e-4) for b in patches]
                  for a in patches])

    def fuse(s):
        return np.array([[sum(s[i + d, j + d] for d in (-1, 0, 1) if 0 <= i + d < n and
                              0 <= j + d < n) for j in range(n)] for i in range(n)])

    columns = [i * w + j for j in range(w) for i in range(h)]  # column-major order
    s = fuse(s)
    s[np.ix_(columns, columns)] = fuse(s[np.ix_(columns, columns)])
    known = np.array([mp[i:i + 3, j:j + 3].mean() == 0 for i in range(h) for j in range(w)])
    e = np.exp(10.0 * s * known - np.max(10.0 * s * known, axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True) * known).reshape(h, w, n)


def test_contextual_attention_weights_match_the_reference_loops():
    rng = np.random.default_rng(0)
    f = np.maximum(rng.normal(size=(2, 4, 5, 3)), 0).astype(np.float32)  # ReLU features
    m = np.zeros((2, 4, 5, 1), np.float32)
    m[0, 1:3, 3:5], m[1, 0, 0] = 1, 1
    got = np.asarray(attention_weights(jnp.asarray(f), jnp.asarray(m)))
    for b in range(2):
        np.testing.assert_allclose(got[b], reference_attention_weights(f[b], m[b, ..., 0]),
                                   rtol=1e-4, atol=1e-6)


def test_contextual_attention_rebuilds_a_hole_from_its_known_copy():
    """Features whose right half repeats the left; a hole in the right half is rebuilt from the
    left half's copy: weight ~1 on the copy, 0 on every patch touching the hole."""
    rng = np.random.default_rng(1)
    small = rng.normal(size=(8, 6, 4))
    blocks = np.concatenate([small, small], axis=1)  # (8, 12, 4)
    x = np.repeat(np.repeat(blocks, 2, 0), 2, 1)[None].astype(np.float32)  # (1, 16, 24, 4)
    mask = np.zeros((1, 16, 24, 1), np.float32)
    mask[0, 6:8, 16:18] = 1  # block (3, 8)
    y = np.asarray(contextual_attention(jnp.asarray(x), jnp.asarray(mask)))
    assert y.shape == x.shape
    np.testing.assert_allclose(y[0, 6:8, 16:18], x[0, 6:8, 16:18], atol=1e-4)
    weights = np.asarray(attention_weights(jnp.asarray(blocks[None], jnp.float32),
                                           resize_nearest(jnp.asarray(mask), 8, 12)))[0]
    touching = [r * 12 + c for r in range(2, 5) for c in range(7, 10)]
    assert np.all(weights[..., touching] == 0)
    for r in range(2, 5):
        for c in range(7, 10):
            assert weights[r, c, r * 12 + c - 6] > 0.999


def test_contextual_attention_gradients_are_finite_and_flow():
    x = np.zeros((1, 8, 8, 2), np.float32)  # zero patches: the norm's floor
    x[0, :4, :4] = np.arange(32, dtype=np.float32).reshape(4, 4, 2) / 32
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[0, 4:, 4:] = 1
    grad = jax.grad(lambda v: jnp.sum(contextual_attention(v, jnp.asarray(mask)) ** 2))(
        jnp.asarray(x))
    assert np.all(np.isfinite(grad)) and np.any(grad[0, :4, :4] != 0)


@pytest.mark.slow  # four traces of the two-stage G: 52 s at load 4, 9 min at load 9
def test_two_stage_refinement_fills_the_hole_through_contextual_attention(monkeypatch):
    """TwoStageGenerator calls contextual_attention on its attention branch, which rebuilds the
    hole's locations from known patches, and the refined fill inside the hole depends on that
    output (the coarse result does not): fails if the branch is disconnected."""
    from gan_jax.models import inpainting

    g = inpainting.TwoStageGenerator(2, 1, ())
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 1)), jnp.float32)
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[0, :8, :8] = 1  # rows, columns 0-1 of the attended 8x8 map
    mask = jnp.asarray(mask)
    params = g.init(jax.random.key(0), x, mask)
    unprobed = g.apply(params, x, mask)[1]
    attended = []

    def outputs(delta):  # delta added to the attention's output
        def attend(features, m):
            attended.append(contextual_attention(features, m))
            return attended[-1] + delta
        monkeypatch.setattr(inpainting, "contextual_attention", attend)
        return g.apply(params, x, mask)

    zero = jnp.zeros((1, 8, 8, 8))  # (B, H / 4, W / 4, 4w)
    coarse, refined = outputs(zero)
    assert len(attended) == 1 and np.all(np.asarray(attended[0])[0, :2, :2] != 0)
    np.testing.assert_array_equal(refined, unprobed)  # the probe adds 0
    to_hole = jax.grad(lambda d: jnp.sum(outputs(d)[1] * mask))(zero)
    to_coarse = jax.grad(lambda d: jnp.sum(outputs(d)[0]))(zero)
    assert np.all(np.asarray(to_coarse) == 0) and np.any(np.asarray(to_hole)[0, :2, :2] != 0)


def test_fill_keeps_known_pixels_bitwise():
    task = build_task(tiny_inpainting())
    g_vars, _ = task.init(jax.random.key(0), (16, 16, 1))
    images = jax.random.uniform(jax.random.key(1), (6, 16, 16, 1), minval=-1, maxval=1)
    keys = jax.random.split(jax.random.key(2), 6)
    mask = jax.jit(task.masks, static_argnums=1)(keys, (16, 16))
    translate = jax.jit(task.translate)  # compiled once, called twice
    out = np.asarray(translate(g_vars["params"], {}, images, keys))
    known = np.asarray(mask)[..., 0] == 0
    np.testing.assert_array_equal(out[known], np.asarray(images)[known])
    assert not np.array_equal(out[~known], np.asarray(images)[~known])  # holes are G's
    np.testing.assert_array_equal(  # the same keys draw the same masks and fills
        out, np.asarray(translate(g_vars["params"], {}, images, keys)))


@pytest.mark.slow  # three short runs: 7 min on 2 cores at load 14 (mostly compiling)
def test_train_is_deterministic_resumes_bitwise_and_writes_grids(tmp_path, one_device):
    config = tiny_inpainting()
    first = train_and_evaluate(config, tmp_path / "first", devices=one_device, progress=False)
    again = train_and_evaluate(config, tmp_path / "again", devices=one_device, progress=False)
    assert_bitwise_equal(first, again)
    config.train.num_steps = 2
    train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    config.train.num_steps = 4
    resumed = train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    assert int(resumed.step) == 4
    assert_bitwise_equal(first, resumed)
    assert "spectral" in first.d_state and first.g_state == {}
    grid = np.asarray(Image.open(tmp_path / "first" / "samples" / "step_0000004.png"))
    assert grid.shape[:2] == (3 * 17 + 1, 4 * 17 + 1)  # rows masked, filled, original; 4 images
    masked, filled, originals = (grid[17 * r + 1:17 * r + 17] for r in range(3))
    assert not np.array_equal(originals, filled) and not np.array_equal(masked, filled)


@pytest.mark.slow  # two short runs: 9 min on 2 cores at load 14 (mostly compiling)
def test_eight_devices_match_one_device(tmp_path):
    """No batch statistics, masks from global example keys, and the L1 normalised by the global
    pixel count: only float summation order differs. SGD, as tests/test_pix2pix.py: Adam turns
    that float noise in near-zero gradients into full-size steps."""
    config = tiny_inpainting()
    config.train.num_steps, config.train.sample_every_steps = 3, 0
    for c in (config.optim.g, config.optim.d):
        c.name, c.learning_rate = "sgd", 0.05
    one = train_and_evaluate(config, tmp_path / "one", devices=jax.devices()[:1], progress=False)
    eight = train_and_evaluate(config, tmp_path / "eight", devices=jax.devices()[:8],
                               progress=False)
    for x, y in zip(leaves(one), leaves(eight), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


# --- translate and evaluate on an inpainting workdir ------------------------------------------


@pytest.fixture(scope="module")
def inpainting_workdir(tmp_path_factory):
    from test_translate import save_initial_checkpoint

    return save_initial_checkpoint(tiny_inpainting(), tmp_path_factory.mktemp("inpaint") / "run")


def _images(tmp_path, n=3):
    images = np.random.default_rng(0).integers(0, 256, (n, 16, 16, 1), dtype=np.uint8)
    np.savez(tmp_path / "in.npz", images=images)
    return images


def test_translate_fills_drawn_and_given_masks_keeping_known_pixels(inpainting_workdir, tmp_path):
    from gan_jax.translate import translate_path

    images = _images(tmp_path)
    quiet = dict(log=lambda m: None)
    for name in ("a", "b"):  # same inputs and seed -> same bytes
        translate_path(str(inpainting_workdir), str(tmp_path / "in.npz"),
                       str(tmp_path / f"{name}.npz"), seed=3, mask="box", save_masks=True, **quiet)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    out = np.load(tmp_path / "a.npz")
    filled, masks_ = out["images"], out["masks"]
    assert masks_.shape == (3, 16, 16, 1) and set(np.unique(masks_)) == {0, 1}
    area = masks_.mean(axis=(1, 2, 3))
    assert np.all((area >= 0.05) & (area <= 0.6))  # the run's inpaint.area_range
    np.testing.assert_array_equal(filled[masks_ == 0], images[masks_ == 0])
    for kind, b in ((m, i) for i, m in enumerate(masks_)):  # boxes: one filled rectangle each
        rows, cols = np.nonzero(kind[..., 0].any(1))[0], np.nonzero(kind[..., 0].any(0))[0]
        assert kind[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all(), b
    given = np.zeros((3, 16, 16), np.uint8)
    given[:, 4:10, 3:12] = 1
    np.savez(tmp_path / "m.npz", masks=given)
    translate_path(str(inpainting_workdir), str(tmp_path / "in.npz"), str(tmp_path / "c.npz"),
                   mask=str(tmp_path / "m.npz"), **quiet)
    filled = np.load(tmp_path / "c.npz")["images"][..., 0]
    np.testing.assert_array_equal(filled[given == 0], images[..., 0][given == 0])
    # a folder of mask images matched by name gives the same fills
    (tmp_path / "in").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.fromarray(images[i, ..., 0]).save(tmp_path / "in" / f"{i}.png")
        Image.fromarray(given[i] * 255).save(tmp_path / "masks" / f"{i}.png")
    translate_path(str(inpainting_workdir), str(tmp_path / "in"), str(tmp_path / "out"),
                   mask=str(tmp_path / "masks"), **quiet)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")),
                                      filled[i])


@pytest.mark.parametrize("masks_, message", [
    (np.zeros((3, 16, 16)), "error: mask 0 is all 0: it marks no pixel missing, nothing to fill"),
    (np.ones((3, 16, 16)), "error: mask 0 is all 1: every pixel is missing, nothing to fill from"),
    (np.full((3, 16, 16), 2), "masks must be binary (0 = known, 1 = missing), got values [2]"),
    (np.ones((3, 8, 16)), "error: mask 0 is 8x16 but its image is 16x16"),
    (np.ones((2, 16, 16)), "'masks' must be (N, H, W) or (N, H, W, 1) with N = 3 inputs")])
def test_bad_masks_are_one_line_and_write_nothing(inpainting_workdir, tmp_path, monkeypatch,
                                                  masks_, message):
    from conftest import run_main

    from gan_jax import translate

    _images(tmp_path)
    np.savez(tmp_path / "m.npz", masks=masks_)
    code, err = run_main(translate.main, [
        "translate", f"--workdir={inpainting_workdir}", f"--input={tmp_path / 'in.npz'}",
        f"--out={tmp_path / 'out.npz'}", f"--mask={tmp_path / 'm.npz'}"], monkeypatch)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.slow  # a classifier, reference features and the fills: 1.5 min at load 14
def test_evaluate_scores_fills_per_area_bin(inpainting_workdir, tmp_path):
    from gan_jax import evaluate
    from gan_jax.metrics import classifier, image_quality
    from gan_jax.translate import translate_path

    classifier.train_classifier("digits", 16, 1, tmp_path / "clf", steps=30, seed=0)
    result = evaluate.evaluate_workdir(str(inpainting_workdir), num_samples=12, metrics="fid",
                                       extractor=f"classifier:{tmp_path / 'clf'}")
    scores = result["scores"]
    assert {"l1", "psnr", "ssim", "hole/l1", "hole/psnr", "hole/ssim", "fid",
            "class_share"} <= set(scores)
    counts = [scores[f"{b}/count"] for b in ("0-20%", "20-40%", "40-60%")]
    assert sum(counts) == 12 and result["num_samples"] == 12
    # the scores are those of `translate --seed=eval.seed` on the first test images
    from gan_jax.data.sources import make_source

    test = make_source("digits", 16, 1)
    np.savez(tmp_path / "in.npz", images=test.get(np.arange(12))["image"])
    translate_path(str(inpainting_workdir), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"),
                   seed=0, save_masks=True, log=lambda m: None)
    out = np.load(tmp_path / "out.npz")
    originals = test.get(np.arange(12))["image"]
    assert scores["l1"] == float(image_quality.l1(out["images"], originals).mean())
    hole = image_quality.masked_quality(out["images"], originals, out["masks"])
    assert scores["hole/l1"] == float(np.nanmean(hole["l1"]))
    assert 0 < scores["hole/l1"] and scores["l1"] < scores["hole/l1"]  # known pixels add 0


def test_networks_shapes_and_recipes_follow_the_reference():
    from gan_jax.configs import celebahq_inpainting, places_inpainting
    from gan_jax.models.inpainting import SNPatchDiscriminator, TwoStageGenerator

    x, m = jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 1))
    g = TwoStageGenerator(24)
    out = jax.eval_shape(lambda: g.apply(g.init(jax.random.key(0), x, m), x, m))
    assert [o.shape for o in out] == [(1, 32, 32, 3)] * 2  # coarse, refined
    d = SNPatchDiscriminator(64, 6)
    xm = jnp.zeros((1, 256, 256, 4))
    logits = jax.eval_shape(lambda: d.apply(d.init(jax.random.key(0), xm, False), xm, False))
    assert logits.shape == (1, 4 * 4 * 256)  # 256 px / 2^6, 256 channels
    for recipe, steps in ((celebahq_inpainting, 500_003), (places_inpainting, 1_000_003)):
        c = recipe.get_config()  # mmagic configs/deepfillv2/, _base_/models/base_deepfillv2.py
        assert (c.model.generator, c.model.ngf, c.model.ndf, c.model.n_layers) == (
            "two_stage", 24, 64, 6)
        assert (c.inpaint.gan_weight, c.inpaint.hole_weight, c.inpaint.valid_weight) == (
            0.1, 1.0, 1.0)
        assert tuple(c.inpaint.area_range) == (0.15, 0.65) and c.loss.name == "hinge"
        assert (c.optim.g.learning_rate, c.optim.g.b1, c.optim.d.learning_rate) == (1e-4, 0.9, 1e-4)
        assert (c.train.batch_size, c.train.num_steps, c.data.resolution) == (16, steps, 256)


def test_workdirs_saved_before_inpainting_resume_unchanged():
    """config.inpaint is new: a saved config without it compares as unchanged."""
    import json

    from gan_jax import config as config_lib
    from gan_jax.configs import digits_dcgan

    new = config_lib.to_plain(digits_dcgan.get_config())
    old = json.loads(json.dumps(new))
    del old["inpaint"]
    assert config_lib.math_changes(old, new) == []
