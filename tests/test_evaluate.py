"""Evaluation: the reference-feature cache, scores during training, the best checkpoint, and the
`evaluate` command agreeing with what training logged."""

import json

import numpy as np
import pytest

from gan_jax import config as config_lib
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


def test_training_logs_scores_keeps_the_best_and_evaluate_reproduces_them(
        tiny_config, one_device, tmp_path, cache, digits_classifier):
    plain = train_and_evaluate(tiny_config, tmp_path / "plain", devices=one_device, progress=False)
    config = _eval_config(tiny_config, digits_classifier)
    workdir = tmp_path / "run"
    state = train_and_evaluate(config, workdir, devices=one_device, progress=False)
    assert_bitwise_equal(state, plain)  # evaluating changes nothing in training

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
    (["--metrics=fid,bogus"], "error: unknown metric(s) bogus; choose from fid, kid, is, pr"),
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
