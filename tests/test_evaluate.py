"""Evaluation: the reference-feature cache, scores during training, the best checkpoint, and the
`evaluate` command agreeing with what training logged."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from gan_jax import config as config_lib
from gan_jax import evaluate
from gan_jax.evaluate import TranslationEvaluator
from gan_jax.data.sources import ArraySource
from gan_jax.metrics import classifier, reference
from gan_jax.train import train_and_evaluate
from conftest import run_module
from test_train import assert_bitwise_equal


class CountingExtractor:
    """Features = per-image channel means; counts the images it was given."""

    name, fingerprint = "counting", "v1"

    def __init__(self):
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return {"features": images.reshape(len(images), -1).astype(np.float32)[:, :4]}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(reference.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_reference_features_are_cached_and_recomputed_when_the_images_change(cache):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 4, 4, 1), dtype=np.uint8)
    extractor = CountingExtractor()
    first = reference.reference_features(ArraySource("x", images), "x", extractor)
    again = reference.reference_features(ArraySource("x", images), "x", extractor)
    assert extractor.seen == 30  # the second call read the cache
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, images.reshape(30, -1)[:, :4].astype(np.float32))

    changed = images.copy()
    changed[3, 0, 0, 0] ^= 1  # same data set name and size, one pixel differs
    messages = []
    fresh = reference.reference_features(ArraySource("x", changed), "x", extractor, log=messages.append)
    assert extractor.seen == 60 and "stale" in messages[0]
    assert fresh[3, 0] == changed[3, 0, 0, 0]

    subset = reference.reference_features(ArraySource("x", images), "x", extractor, num_real=10)
    assert subset.shape == (10, 4) and len(list((cache / "reference").glob("*.npz"))) == 2
    np.testing.assert_array_equal(subset, first[reference.example_indices(30, 10)])


@pytest.fixture(scope="session")
def digits_classifier(tmp_path_factory):
    """A classifier of 8x8 digits, trained briefly (its accuracy does not matter here)."""
    directory = tmp_path_factory.mktemp("classifier")
    classifier.train_classifier("digits", 8, 1, directory, steps=30, seed=0)
    return directory


def _eval_config(config, classifier_dir):
    config.eval.every_steps = 2
    config.eval.extractor = f"classifier:{classifier_dir}"
    config.eval.num_samples = 40
    config.eval.kid_subset_size = 20
    config.eval.kid_subsets = 5
    config.eval.is_splits = 4
    return config


def tensorboard_images(logdir) -> dict[int, np.ndarray]:
    """{step: RGB pixels} of the TensorBoard image summaries tagged 'samples' under `logdir`."""
    import io
    import struct

    from PIL import Image
    from tensorboardX.proto import event_pb2

    images = {}
    for path in logdir.glob("events.out.tfevents.*"):
        data, i = path.read_bytes(), 0
        while i < len(data):  # TFRecords: length (8 bytes), its CRC (4), event, its CRC (4)
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                if v.tag == "samples":
                    png = Image.open(io.BytesIO(v.image.encoded_image_string))
                    images[event.step] = np.asarray(png.convert("RGB"))
    return images


def test_training_logs_scores_keeps_the_best_and_evaluate_reproduces_them(
        tiny_config, one_device, tmp_path, cache, digits_classifier, capsys):
    plain = train_and_evaluate(tiny_config, tmp_path / "plain", devices=one_device, progress=False)
    config = _eval_config(tiny_config, digits_classifier)
    config.train.sample_every_steps = 2
    workdir = tmp_path / "run"
    state = train_and_evaluate(config, workdir, devices=one_device, progress=True)
    assert_bitwise_equal(state, plain)  # evaluating and sampling change nothing in training
    shown = capsys.readouterr().err

    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r for r in logged if "eval/fid" in r}
    assert sorted(evals) == [2, 4]
    for step in (2, 4):
        result = json.loads((workdir / "eval" / f"step_{step:07d}.json").read_text())
        assert result["scores"]["fid"] == evals[step]["eval/fid"]
        assert set(result["scores"]) == {"fid", "kid", "kid_std", "is", "is_std", "precision",
                                         "recall"}
        assert result["generator"] == "ema" and result["num_samples"] == 40
        assert result["num_real"] == 1797 and result["extractor"] == "classifier:digits@8x8x1"
    best_step = min(evals, key=lambda s: evals[s]["eval/fid"])
    assert [p.name for p in (workdir / "best").iterdir() if p.name.isdigit()] == [str(best_step)]

    # What the user sees: a line per evaluation, a closing summary, the grids in TensorBoard too.
    for step in (2, 4):
        assert f"step {step}: fid {evals[step]['eval/fid']:.4g} kid " in shown
    assert f"trained steps 0 -> 4 of 4 in " in shown
    # the tiny config's EMA (0.9 from step 1) still weighs its start 0.9^3 at step 4
    assert ("note: ema.decay 0.9 from ema.start_step 1 leaves the step-1 generator 73% of the EMA "
            "generator at step 4; for a run this short use a smaller ema.decay or a later "
            "ema.start_step\n") in shown
    assert (f"best checkpoint (fid): step {best_step} in {(workdir / 'best').absolute()}; "
            f"fid {evals[best_step]['eval/fid']:.4g} kid ") in shown
    assert f"sample grids in {workdir / 'samples'} (and TensorBoard's images)" in shown
    logged_images = tensorboard_images(workdir / "tensorboard")
    assert sorted(logged_images) == [2, 4]
    for step, pixels in logged_images.items():
        with Image.open(workdir / "samples" / f"step_{step:07d}.png") as png:
            np.testing.assert_array_equal(pixels, np.asarray(png.convert("RGB")))

    out = tmp_path / "best.json"
    proc = run_module("gan_jax.evaluate", f"--workdir={workdir}", "--checkpoint=best",
                      f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["step"] == best_step
    assert result["scores"] == json.loads(
        (workdir / "eval" / f"step_{best_step:07d}.json").read_text())["scores"]

    proc = run_module("gan_jax.evaluate", f"--workdir={workdir}", "--checkpoint=4",
                      "--metrics=fid", "--num_samples=20", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result["scores"]) == ["fid"] and result["num_samples"] == 20


@pytest.fixture(scope="module")
def trained_workdir(tiny_config_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("evaluate") / "run"
    proc = run_module("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}",
                      "--config.train.num_steps=2")
    assert proc.returncode == 0, proc.stderr
    return workdir


@pytest.mark.parametrize("args, message", [
    (["--metrics=fid,bogus"], "error: unknown metric(s) bogus; choose from fid, kid, is, pr, cas"),
    (["--metrics=fid", "--num_samples=1"], "error: fid needs at least 2 generated samples"),
    (["--extractor=inception:/nonexistent/w.pth"], "curl -L -o /nonexistent/w.pth"),
    (["--checkpoint=3"], "error: no checkpoint 3 in"),
])
def test_evaluate_bad_input_is_one_line(trained_workdir, cache, digits_classifier, args, message):
    workdir = trained_workdir
    proc = run_module("gan_jax.evaluate", f"--workdir={workdir}",
                      f"--extractor=classifier:{digits_classifier}", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("key, value, message", [
    ("metrics", "fid,kid,nope", r"config\.eval\.metrics: unknown metric\(s\) nope"),
    ("best_metric", "recall", r"config\.eval\.best_metric: 'recall' is not computed; choose one of fid, is"),
    ("num_samples", 5, r"config\.eval\.num_samples: is needs at least 10 generated samples"),
    ("extractor", "vgg", r"config\.eval\.extractor: 'vgg' is not classifier"),
])
def test_bad_eval_config_is_refused(tiny_config, key, value, message):
    tiny_config.eval.metrics = "fid,is"
    tiny_config.eval[key] = value
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate(tiny_config)


# ---------------------------------------------------------------------------------------------
# Image-to-image: the stand-in tasks translate by a fixed function of the image.


@dataclasses.dataclass(frozen=True)
class Identity:
    """An image-to-image task whose translation returns its input."""

    image_to_image = True
    directions = ("a2b",)

    def translate(self, g_params, g_state, images, keys, direction="a2b"):
        return images


@dataclasses.dataclass(frozen=True)
class Identity2(Identity):
    directions = ("a2b", "b2a")


def _state():
    from gan_jax.state import GANState

    zero = np.zeros((), np.int32)
    return GANState(step=zero + 7, key=None, g_params={}, d_params={}, g_state={}, d_state={},
                    g_opt_state=None, d_opt_state=None, ema_params=None, ema_state=None,
                    skipped=zero, task_state={})


def _pairs(tmp, a, b):
    """pairs_ab:TMP with test/A/i.png and test/B/i.png."""
    from PIL import Image

    for side, images in (("A", a), ("B", b)):
        (tmp / "test" / side).mkdir(parents=True)
        for i, x in enumerate(images):
            Image.fromarray(x).save(tmp / "test" / side / f"{i}.png")
    return f"pairs_ab:{tmp}"


def _i2i(dataset, resolution, channels):
    """(config, test split) of image-to-image data."""
    from gan_jax.configs import base
    from gan_jax.data.image_pairs import make_pair_source

    config = base.get_config()
    config.data.dataset, config.data.resolution, config.data.channels = (dataset, resolution,
                                                                         channels)
    config.eval.kid_subset_size, config.eval.kid_subsets = 3, 2
    return config, make_pair_source(dataset, resolution, channels, split="test")


def test_identity_translation_scores_l1_0_psnr_capped_ssim_1(tmp_path, cache):
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    config, test = _i2i(_pairs(tmp_path, images, images), 16, 3)
    evaluator = TranslationEvaluator(config, test, CountingExtractor(), ("fid", "kid"), 100)
    result = evaluator(Identity(), _state())
    s = result["scores"]
    cap = 10 * np.log10(255 ** 2 * 16 * 16 * 3)  # image_quality.psnr_of_mse of an MSE of 0
    assert (s["a2b/l1"], s["a2b/psnr"], s["a2b/ssim"]) == (0.0, pytest.approx(cap, rel=1e-15), 1.0)
    assert abs(s["a2b/fid"]) < 1e-6 and set(s) == {"a2b/l1", "a2b/psnr", "a2b/ssim", "a2b/fid",
                                                   "a2b/kid", "a2b/kid_std"}
    assert result["step"] == 7 and result["num_samples"] == {"a2b": 4}
    assert result["num_real"] == {"a2b": 4}


def test_paired_scores_equal_hand_computations(tmp_path, cache):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (3, 12, 12, 1), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    config, test = _i2i(_pairs(tmp_path, a[..., 0], b[..., 0]), 12, 1)
    s = TranslationEvaluator(config, test, CountingExtractor(), ("fid",), 2)(Identity(),
                                                                          _state())["scores"]
    x, y = a[:2].astype(np.float64), b[:2].astype(np.float64)  # num_samples=2: the first two
    assert s["a2b/l1"] == pytest.approx(np.abs(x - y).mean() / 255, abs=1e-15)
    mse = ((x - y) ** 2).mean(axis=(1, 2, 3))
    assert s["a2b/psnr"] == pytest.approx(np.mean(10 * np.log10(255 ** 2 / mse)), rel=1e-12)
    ssim = [skimage_metrics.structural_similarity(
        a[i], b[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255, channel_axis=-1) for i in range(2)]
    assert s["a2b/ssim"] == pytest.approx(np.mean(ssim), abs=1e-10)


class FixedClass:
    """A 'classifier' whose logits pick class 9 for images brighter than 60 on average, else
    `other`."""

    def __init__(self, other):
        self.other = other

    def __call__(self, images):
        bright = images.reshape(len(images), -1).mean(axis=1) > 60
        return {"logits": np.eye(10)[np.where(bright, 9, self.other)]}


def test_fashion_class_shares_use_each_directions_target_class(cache):
    config, test = _i2i("fashion_sneakers2boots", 32, 1)
    evaluator = TranslationEvaluator(config, test, CountingExtractor(), (), 30,
                                     classifier=FixedClass(7))
    s = evaluator(Identity2(), _state())["scores"]
    for direction, images, target in (("a2b", test.a.images, 9), ("b2a", test.b.images, 7)):
        bright = images[:30].reshape(30, -1).mean(axis=1) > 60
        share = np.mean(np.where(bright, 9, 7) == target)
        assert s[f"{direction}/class_share"] == share and 0 < share < 1
    assert set(s) == {"a2b/class_share", "b2a/class_share"}  # unpaired: no L1/PSNR/SSIM


def test_edges2fashion_class_share_is_against_the_source_images_class(cache):
    from gan_jax.data.idx import read_idx
    from gan_jax.data.sources import FASHION_MNIST_DIR

    config, test = _i2i("edges2fashion", 32, 1)
    evaluator = TranslationEvaluator(config, test, CountingExtractor(), (), 50,
                                     classifier=FixedClass(0))
    s = evaluator(Identity(), _state())["scores"]
    labels = read_idx(f"{FASHION_MNIST_DIR}/t10k-labels-idx1-ubyte.gz")[:50]
    edges = test.a[:50]
    bright = edges.reshape(50, -1).mean(axis=1) > 60
    assert s["a2b/class_share"] == np.mean(np.where(bright, 9, 0) == labels)
    assert s["a2b/l1"] > 0.1  # edges are not the images


def test_image_to_image_best_metric_names_a_direction():
    assert evaluate.is_better("a2b/ssim", 0.5, 0.4) and evaluate.is_better("b2a/l1", 0.1, 0.2)
    assert not evaluate.is_better("a2b/psnr", 20.0, 21.0)


def test_image_to_image_best_metric_choices_follow_the_data_and_directions():
    from gan_jax.configs import edges2fashion_pix2pix, fashion_cyclegan

    cyclegan = fashion_cyclegan.get_config()
    cyclegan.eval.metrics = "fid"
    assert evaluate.translation_best_metrics(cyclegan, ("a2b", "b2a"), paired=False) == (
        "a2b/fid", "a2b/class_share", "b2a/fid", "b2a/class_share")
    edges = edges2fashion_pix2pix.get_config()
    edges.eval.metrics = "kid"
    assert evaluate.translation_best_metrics(edges, ("a2b",), paired=True) == (
        "a2b/l1", "a2b/psnr", "a2b/ssim", "a2b/kid", "a2b/class_share")
    edges.data.direction = "BtoA"  # images -> edges: no class to hit
    assert evaluate.translation_best_metrics(edges, ("a2b",), paired=True) == (
        "a2b/l1", "a2b/psnr", "a2b/ssim", "a2b/kid")


def test_target_classes_follow_the_data_sets_direction():
    from gan_jax.configs import base

    d = base.get_config().data
    d.dataset = "fashion_sneakers2boots"
    assert evaluate.target_classes(d, "a2b", 2).tolist() == [9, 9]
    d.direction = "BtoA"  # the task's a2b turns boots into sneakers
    assert evaluate.target_classes(d, "a2b", 2).tolist() == [7, 7]
    d.dataset = "edges2fashion"  # images -> edges: no class to hit
    assert evaluate.target_classes(d, "a2b", 2) is None


@pytest.mark.slow  # about 3 min on 2 loaded cores: a pix2pix checkpoint, a classifier, compiles
def test_evaluate_scores_a_pix2pix_checkpoint_on_its_own_translations(tmp_path, cache):
    from gan_jax import translate
    from gan_jax.configs import edges2fashion_pix2pix
    from gan_jax.data.image_pairs import make_pair_source
    from gan_jax.metrics import image_quality
    from test_translate import save_initial_checkpoint

    config = edges2fashion_pix2pix.get_config()
    config.model.ngf = config.model.ndf = 4
    config.eval.seed = 3
    workdir = save_initial_checkpoint(config, tmp_path / "run")
    classifier.train_classifier("fashion_mnist", 32, 1, tmp_path / "clf", steps=30, seed=0)
    result = evaluate.evaluate_workdir(str(workdir), num_samples=6, metrics="fid",
                                       extractor=f"classifier:{tmp_path / 'clf'}")
    assert sorted(result["scores"]) == ["a2b/class_share", "a2b/fid", "a2b/l1", "a2b/psnr",
                                        "a2b/ssim"]
    assert result["num_samples"] == {"a2b": 6} and result["num_real"] == {"a2b": 10000}
    # the scores are those of `translate --seed=eval.seed` on the test split's first A images
    test = make_pair_source("edges2fashion", 32, 1, split="test")
    np.savez(tmp_path / "a.npz", images=test.a[:6])
    translate.translate_path(str(workdir), str(tmp_path / "a.npz"), str(tmp_path / "out.npz"),
                             seed=3, log=lambda m: None)
    out = np.load(tmp_path / "out.npz")["images"]
    expected = image_quality.image_quality(out, test.b[:6])
    assert {k: result["scores"][f"a2b/{k}"] for k in expected} == expected
    json.dumps(result)
