"""Classification Accuracy Score: hand-made generators with known answers, and `evaluate
--metrics=cas` on a conditional checkpoint."""

import jax
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import evaluate, sample
from gan_jax.metrics import cas, classifier
from gan_jax.metrics.reference import example_indices
from test_export import workdir  # noqa: F401  (the conditional checkpoint fixture)

STEPS = 30


@pytest.fixture(scope="module")
def digits():
    """(train source, train indices, test source, test indices) of 8x8 digits."""
    return classifier.train_test_sources("digits", "", 8, 1)[:4]


def test_a_generator_that_returns_the_real_images_scores_cas_equal_to_cas_real(digits):
    train, train_idx, test, test_idx = digits
    real = train.get(train_idx[example_indices(len(train_idx), 300)])  # cas_real's own subset
    scores, num_real = cas.cas_scores(real["image"], real["label"], train, train_idx, test,
                                      test_idx, steps=STEPS)
    assert num_real == 300 and scores["cas"] == scores["cas_real"] > 0.8


def test_a_generator_with_shuffled_labels_scores_about_chance(digits):
    train, train_idx, test, test_idx = digits
    real = train.get(train_idx[example_indices(len(train_idx), 300)])
    shuffled = np.random.default_rng(0).permutation(real["label"])
    scores, _ = cas.cas_scores(real["image"], shuffled, train, train_idx, test, test_idx,
                               steps=STEPS)
    assert scores["cas"] < 0.2 < 0.8 < scores["cas_real"]  # 10 classes: chance is 0.1


def test_evaluate_cas_trains_on_the_samples_and_their_drawn_labels(workdir, monkeypatch):  # noqa: F811
    monkeypatch.setattr(cas, "CAS_STEPS", 5)
    result = evaluate.evaluate_workdir(str(workdir), metrics="cas", num_samples=32)
    assert set(result["scores"]) == {"cas", "cas_real"} and result["cas_num_real"] == 32
    assert result["extractor"] is None and result["num_real"] is None

    run, state = sample.restore_workdir(str(workdir))
    fake = sample.generate_images(run.task, state, 32, run.config.eval.seed)
    labels = run.task.labels(sample.latent_keys(run.config.eval.seed, 0, 32))
    train, train_idx, test, test_idx = classifier.train_test_sources("digits", "", 8, 1)[:4]
    expected, _ = cas.cas_scores(fake, np.asarray(labels), train, train_idx, test, test_idx,
                                 steps=5)
    assert result["scores"] == expected


def test_cas_of_an_unconditional_model_is_refused_in_one_line(tiny_config):
    with pytest.raises(ValueError, match=r"^cas needs a class-conditional model \(model.num_classes"
                                         r" > 0\); this model is unconditional$"):
        evaluate.Evaluator.from_config(tiny_config, metrics="fid,cas")
    tiny_config.eval.metrics = "cas"
    with pytest.raises(config_lib.ConfigError, match=r"^config.eval.metrics: cas needs a "
                                                     r"class-conditional model"):
        config_lib.validate(tiny_config)
