"""Reference rows for the image-to-image experiments' tables, scored as `gan_jax.evaluate` scores
a generator (the config's eval settings, the first eval.num_samples inputs of the test split):

* identity: the inputs themselves as the "translations" (a generator that does nothing);
* real: the first eval.num_samples target-domain images of the train split (a perfect generator
  whose outputs are new real images; their class share is measured against their own labels).

    python experiments/image_to_image_floors.py configs/edges2fashion_pix2pix.py
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np

from gan_jax.data.image_pairs import ANKLE_BOOT, SNEAKER, make_pair_source
from gan_jax.data.sources import make_source
from gan_jax.evaluate import (classifier_data, domains, feature_scores, make_extractor,
                              target_classes)
from gan_jax.metrics import image_quality, parse_metrics, reference


def load_config(path: str):
    """get_config() of a config file."""
    spec = importlib.util.spec_from_file_location("recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def train_targets(d, direction: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first n target-domain images of the train split, their classes)."""
    train = make_pair_source(d.dataset, d.resolution, d.channels, split="train",
                             data_dir=d.data_dir or None)
    if train.paired:  # edges2fashion: B is the Fashion image, its class the train label
        labels = make_source("fashion_mnist:train", d.resolution, 1, data_dir=d.data_dir or None)
        return train.b[:n], labels.labels[:n]
    side, label = (train.b, ANKLE_BOOT) if direction == "a2b" else (train.a, SNEAKER)
    return side.get(np.arange(n))["image"], np.full(n, label)


def floors(config) -> dict[str, dict[str, float]]:
    """{'identity/a2b': scores, 'real/a2b': scores, ...} for each direction of the recipe."""
    d, e = config.data, config.eval
    test = make_pair_source(d.dataset, d.resolution, d.channels, split=d.test_split,
                            data_dir=d.data_dir or None)
    extractor = make_extractor(e.extractor, classifier_data(d))
    metrics = parse_metrics(e.metrics)
    split = domains(test)
    results = {}
    for direction in ("a2b", "b2a") if not test.paired else ("a2b",):
        source, target = ((split["a"], split["b"]) if direction == "a2b"
                          else (split["b"], split["a"]))
        n = min(e.num_samples, source.num_examples)
        real = reference.reference_features(target, target.name, extractor, e.num_real)
        train, train_classes = train_targets(d, direction, n)
        for row, images, wanted in (
                ("identity", source.images[:n], target_classes(d, direction, n)),
                ("real", train, train_classes)):
            s = {}
            if test.paired:
                s.update(image_quality.image_quality(images, target.images[:n]))
            out = extractor(images)
            s.update(feature_scores(metrics, real, out, e))
            s["class_share"] = float(np.mean(np.argmax(out["logits"], -1) == wanted))
            results[f"{row}/{direction}"] = {**s, "num_samples": n, "num_real": len(real)}
    return results


if __name__ == "__main__":
    print(json.dumps(floors(load_config(sys.argv[1])), indent=2))
