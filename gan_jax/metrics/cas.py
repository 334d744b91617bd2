"""Classification Accuracy Score (Ravuri & Vinyals 2019, "Classification Accuracy Score for
Conditional Generative Models"): the real test accuracy of a classifier trained only on a
conditional generator's labelled samples, beside that of the same classifier trained on as many
real images.

The paper trains a ResNet-50 on ImageNet-sized sets; here the classifier is the project's small
CNN (`classifier.Classifier`), trained CAS_STEPS steps with seed CAS_SEED every time, so two
scores differ only by their training images. The test set is the data set's test split
(`classifier.train_test_sources`: e.g. fashion_mnist:test; for digits a fixed 20% hold-out, which
the GAN saw during training).
"""

from __future__ import annotations

import numpy as np

from gan_jax.data.sources import ArraySource, ImageSource
from gan_jax.metrics import classifier
from gan_jax.metrics.reference import example_indices

CAS_STEPS = 1500  # as evaluate.CLASSIFIER_STEPS
CAS_SEED = 0


def cas_scores(fake_images: np.ndarray, fake_labels: np.ndarray, real: ImageSource,
               real_idx: np.ndarray, test: ImageSource, test_idx: np.ndarray,
               steps: int = CAS_STEPS, seed: int = CAS_SEED) -> tuple[dict[str, float], int]:
    """({'cas': test[test_idx] accuracy after training on the N labelled fakes, 'cas_real': after
    training on N real images of real[real_idx]}, the real count): the real images are a fixed
    subset (`reference.example_indices`), all of them when there are fewer than N."""
    fakes = ArraySource("generated", np.asarray(fake_images), np.asarray(fake_labels, np.int32),
                        real.num_classes)
    real_idx = np.asarray(real_idx)[example_indices(len(real_idx), len(fakes.images))]
    scores = {"cas": classifier.fit_and_test(fakes, np.arange(len(fakes.images)), test, test_idx,
                                             steps, seed),
              "cas_real": classifier.fit_and_test(real, real_idx, test, test_idx, steps, seed)}
    return scores, len(real_idx)
