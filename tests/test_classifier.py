"""Tests for gan_jax.metrics.classifier and the `features` command that trains it."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import run_module as run
from gan_jax.data.sources import DataError, make_source
from gan_jax.metrics.classifier import (Classifier, ClassifierExtractor, derived_test_spec, fit,
                                        holdout_split, train_classifier)

# digits at 8 px, feature_dim 32: measured test accuracy 0.980-0.992 over seeds 0-3 at 150 steps
STEPS = 150
MIN_ACCURACY = 0.95


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("classifier")
    meta = train_classifier("digits", 8, 1, workdir, steps=STEPS, seed=0, feature_dim=32)
    return workdir, meta


@pytest.fixture(scope="module")
def digits():
    return make_source("digits", 8, 1).get(np.arange(100))["image"]


def test_digits_accuracy_and_metadata(trained):
    workdir, meta = trained
    assert meta["test_accuracy"] >= MIN_ACCURACY
    assert json.loads((workdir / "classifier.json").read_text()) == meta
    assert meta["params_sha256"] == hashlib.sha256((workdir / "classifier.msgpack").read_bytes()).hexdigest()
    assert (meta["dataset"], meta["test_dataset"], meta["resolution"], meta["channels"]) == (
        "digits", "holdout:digits", 8, 1)
    assert (meta["num_classes"], meta["feature_dim"], meta["steps"], meta["seed"]) == (10, 32, STEPS, 0)
    assert (meta["num_train"], meta["num_test"], meta["architecture"]) == (1438, 359, "cnn-v1")


def test_holdout_is_a_fixed_fifth():
    train, test = holdout_split(1797)
    assert len(test) == 359 and len(train) == 1438
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(1797))
    np.testing.assert_array_equal(holdout_split(1797)[1], test)


@pytest.mark.parametrize("dataset, expected", [
    ("digits", None), ("fashion_mnist", "fashion_mnist:test"), ("fashion_mnist:train", "fashion_mnist:test"),
    ("fashion_mnist:all", None), ("tfds:mnist", "tfds:mnist:test"), ("digits:train", "digits:test"), ("tfds:mnist:train", "tfds:mnist:test"),
    ("tfds:mnist:train[:50%]", None), ("folder:/x", None)])
def test_derived_test_spec(dataset, expected):
    assert derived_test_spec(dataset) == expected


def test_same_seed_same_params_and_load_round_trip(tmp_path, digits):
    metas = [train_classifier("digits", 8, 1, tmp_path / name, steps=3, seed=seed, feature_dim=16)
             for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    data = [(tmp_path / name / "classifier.msgpack").read_bytes() for name in "abc"]
    assert data[0] == data[1] and data[0] != data[2]
    assert metas[0] == metas[1]
    source = make_source("digits", 8, 1)
    params = fit(Classifier(10, 16), source, holdout_split(1797)[0], steps=3, seed=1)
    in_memory = ClassifierExtractor(params, metas[0])(digits)
    loaded = ClassifierExtractor.load(tmp_path / "a")(digits)
    for key in ("features", "logits"):
        np.testing.assert_array_equal(loaded[key], in_memory[key])


def test_extractor_outputs(trained, digits):
    extractor = ClassifierExtractor.load(trained[0])
    out = extractor(digits)
    assert out["features"].shape == (100, 32) and out["features"].dtype == np.float32
    assert out["logits"].shape == (100, 10) and out["logits"].dtype == np.float32
    assert extractor.name == "classifier:digits@8x8x1"
    assert extractor.fingerprint == "cnn-v1-" + trained[1]["params_sha256"][:16]
    assert (extractor.resolution, extractor.channels) == (8, 1)
    labels = make_source("digits", 8, 1).get(np.arange(100))["label"]
    assert (out["logits"].argmax(-1) == labels).mean() >= MIN_ACCURACY  # training examples mostly
    empty = extractor(np.zeros((0, 8, 8, 1), np.uint8))
    assert empty["features"].shape == (0, 32) and empty["logits"].shape == (0, 10)


def test_features_do_not_depend_on_the_batch_split(trained, digits):
    extractor = ClassifierExtractor.load(trained[0])
    whole = extractor(digits)
    np.testing.assert_array_equal(extractor(digits[:3])["features"], whole["features"][:3])
    small = ClassifierExtractor.load(trained[0], batch_size=32)  # 100 = 32 + 32 + 32 + 4 (padded)
    whole = small(digits)
    for start in (0, 30, 97):
        part = small(digits[start:start + 3])
        for key in ("features", "logits"):
            np.testing.assert_array_equal(part[key], whole[key][start:start + 3])


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 16, 16, 1), np.uint8), "classifier:digits@8x8x1 takes images of shape (N, 8, 8, 1), "
     "got (2, 16, 16, 1); resize them with gan_jax.data.sources.prepare_images"),
    (np.zeros((2, 8, 8, 3), np.uint8), "takes images of shape (N, 8, 8, 1), got (2, 8, 8, 3)"),
    (np.zeros((8, 8, 1), np.uint8), "takes images of shape (N, 8, 8, 1), got (8, 8, 1)"),
    (np.zeros((2, 8, 8, 1), np.float32), "classifier:digits@8x8x1 takes uint8 images in [0, 255], "
     "got dtype float32"),
])
def test_bad_images_are_one_line_value_errors(trained, images, message):
    with pytest.raises(ValueError) as info:
        ClassifierExtractor.load(trained[0])(images)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_files_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ClassifierExtractor.load(tmp_path / "nothing")
    assert str(info.value).startswith(f"no {tmp_path / 'nothing' / 'classifier.json'}; create it with "
                                      f"python -m gan_jax.features --workdir={tmp_path / 'nothing'}")


def test_damaged_files_are_refused(trained, tmp_path):
    shutil.copytree(trained[0], tmp_path / "w")
    params = tmp_path / "w" / "classifier.msgpack"
    params.write_bytes(params.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="does not match the params_sha256"):
        ClassifierExtractor.load(tmp_path / "w")
    meta = json.loads((trained[0] / "classifier.json").read_text())
    del meta["feature_dim"]
    (tmp_path / "w" / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="lacks feature_dim; recreate it with python -m gan_jax.features"):
        ClassifierExtractor.load(tmp_path / "w")


def test_unlabelled_or_tiny_data_is_refused(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match=f"data set 'folder:{tmp_path}' has no class labels; a classifier "
                                        "needs a labelled data set"):
        train_classifier(f"folder:{tmp_path}", 8, 1, tmp_path / "w", steps=1)
    with pytest.raises(DataError, match="the classifier needs a resolution >= 8, got 4"):
        train_classifier("digits", 4, 1, tmp_path / "w", steps=1)
    assert not (tmp_path / "w").exists()


def test_command_trains_and_prints_accuracy(tmp_path):
    r = run("gan_jax.features", "--dataset=digits", "--resolution=8", "--channels=1",
            f"--workdir={tmp_path}", "--steps=20", "--feature_dim=16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("test accuracy 0.")
    assert "on 359 examples of holdout:digits (20 steps on 1438 examples" in r.stdout
    accuracy = float(r.stdout.split()[2])
    assert accuracy == round(json.loads((tmp_path / "classifier.json").read_text())["test_accuracy"], 4)
    assert ClassifierExtractor.load(tmp_path).name == "classifier:digits@8x8x1"


def test_command_unknown_dataset_is_one_line_error(tmp_path):
    r = run("gan_jax.features", "--dataset=nope", f"--workdir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: unknown data set 'nope'")
    assert not (tmp_path / "classifier.json").exists()
