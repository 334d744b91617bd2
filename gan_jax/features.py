"""The `features` command: train the small classifier whose space offline scores are computed in.

    python -m gan_jax.features --dataset=digits --resolution=16 --channels=1 --workdir=DIR \
        [--steps=1000 --seed=0 --feature_dim=128 --test_dataset=holdout]

Writes DIR/classifier.msgpack and DIR/classifier.json (see gan_jax/metrics/classifier.py) and
prints the test accuracy; `ClassifierExtractor.load(DIR)` reads them.
"""

from __future__ import annotations

import sys
import time

from gan_jax import cli
from gan_jax.data.sources import DataError
from gan_jax.metrics import classifier


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    flags.DEFINE_string("workdir", None, "Directory for classifier.msgpack and classifier.json.",
                        required=True)
    flags.DEFINE_string("dataset", "digits", "Labelled data set spec, e.g. digits, fashion_mnist, "
                        "tfds:mnist.")
    flags.DEFINE_string("test_dataset", "", "Test set spec; empty: the data set's ':test' split where "
                        "it has one (fashion_mnist, tfds), else 'holdout' (a fixed 20% of it).")
    flags.DEFINE_integer("resolution", 16, "Image side in pixels (>= 8).")
    flags.DEFINE_integer("channels", 1, "Image channels: 1 or 3.")
    flags.DEFINE_integer("steps", classifier.DEFAULT_STEPS, "Training steps.")
    flags.DEFINE_integer("seed", 0, "Seed of the init and the batch order: same seed, same params.")
    flags.DEFINE_integer("feature_dim", 128, "Width of the feature layer.")
    flags.DEFINE_string("data_dir", "", "Data directory for fashion_mnist / tfds (default: theirs).")

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)  # jax logs its backend search at INFO
        f = flags.FLAGS
        start = time.perf_counter()
        try:
            meta = classifier.train_classifier(
                f.dataset, f.resolution, f.channels, f.workdir, steps=f.steps, seed=f.seed,
                feature_dim=f.feature_dim, data_dir=f.data_dir or None, test_dataset=f.test_dataset)
        except (DataError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        print(f"test accuracy {meta['test_accuracy']:.4f} on {meta['num_test']} examples of "
              f"{meta['test_dataset']} ({meta['steps']} steps on {meta['num_train']} examples, "
              f"{time.perf_counter() - start:.1f} s); wrote {f.workdir}/{classifier.PARAMS_FILE} and "
              f"{classifier.META_FILE}")

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
