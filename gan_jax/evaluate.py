"""Evaluating a generator (FID, KID, IS, precision/recall) during training and from the command line.

    python -m gan_jax.evaluate --workdir=DIR [--checkpoint=latest|best|STEP] [--num_samples=N]
        [--metrics=fid,kid,is,pr] [--extractor=classifier|classifier:DIR|inception|inception:PATH]
        [--generator=ema|raw]

Samples come from the EMA generator (its params with its own collections) when the run has one,
or from the live generator with --generator=raw, with latents from `eval.seed` (the same
samples at every evaluation); no truncation is applied. Real features come from
`gan_jax.metrics.reference` (cached). Every result records the generator, truncation, sample and
real counts and the extractor, so numbers are only compared when those agree.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import ml_collections
import numpy as np

from gan_jax import parallel, sample
from gan_jax.data.sources import DataError, make_source
from gan_jax.metrics import LOWER_IS_BETTER, check_counts, parse_metrics, reference, scores

GENERATORS = ("ema", "raw")
CLASSIFIER_STEPS = 1500  # training steps of the automatically trained classifier


def classifier_dir(data: ml_collections.ConfigDict) -> Path:
    """Where the automatically trained classifier of a data set and image shape is cached."""
    from gan_jax.metrics import classifier

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", data.name)
    return (reference.cache_dir() / "classifiers"
            / f"{name}_{data.resolution}x{data.resolution}x{data.channels}_{classifier.ARCHITECTURE}"
              f"_steps{CLASSIFIER_STEPS}_seed0")


def make_extractor(spec: str, data: ml_collections.ConfigDict, log=print):
    """The feature extractor `spec` names (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "inception":
        from gan_jax.metrics.inception import InceptionExtractor

        return InceptionExtractor(arg or None)
    if kind == "classifier":
        from gan_jax.metrics import classifier

        if arg:
            return classifier.ClassifierExtractor.load(arg)
        directory = classifier_dir(data)
        if not (directory / classifier.META_FILE).is_file():
            log(f"training the {data.name} classifier for evaluation into {directory} (once)")
            try:
                meta = classifier.train_classifier(
                    data.name, data.resolution, data.channels, directory, steps=CLASSIFIER_STEPS,
                    seed=0, data_dir=data.data_dir or None)
            except DataError as e:
                raise DataError(f"{e} (eval.extractor='classifier' needs labels: use "
                                "--config.eval.extractor=inception, or "
                                "--config.eval.every_steps=0 to train without evaluation)") from None
            log(f"classifier test accuracy: {meta['test_accuracy']:.4f}")
        return classifier.ClassifierExtractor.load(directory)
    raise ValueError(f"unknown extractor {spec!r}; use classifier, classifier:DIR, inception or "
                     "inception:WEIGHTS_PATH")


@dataclasses.dataclass
class Evaluator:
    """Scores of a state's generator against the real data of its config."""

    config: ml_collections.ConfigDict
    extractor: object
    metrics: tuple[str, ...]
    num_samples: int
    generator: str = "ema"  # ema: the EMA generator when the run has one | raw: the live one
    source: object = None  # the run's data source; built from config.data when None
    log: object = print
    _real: np.ndarray | None = None

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, source=None, log=print,
                    **overrides) -> Evaluator:
        """Build from `config.eval`; `overrides` (metrics, num_samples, extractor, generator) win."""
        e = config.eval
        metrics = parse_metrics(overrides.get("metrics") or e.metrics)
        num_samples = overrides.get("num_samples") or e.num_samples
        extractor = make_extractor(overrides.get("extractor") or e.extractor, config.data, log)
        generator = overrides.get("generator") or "ema"
        if generator not in GENERATORS:
            raise ValueError(f"--generator must be one of {', '.join(GENERATORS)}, "
                             f"got {generator!r}")
        return cls(config, extractor, metrics, num_samples, generator, source, log)

    def real_features(self) -> np.ndarray:
        if self._real is None:
            d = self.config.data
            if self.source is None:
                self.source = make_source(d.name, d.resolution, d.channels,
                                          data_dir=d.data_dir or None,
                                          mixed_channels=d.mixed_channels)
            num_real = len(reference.example_indices(self.source.num_examples,
                                                     self.config.eval.num_real))
            check_counts(self.metrics, self.num_samples, num_real, self.config.eval)
            self._real = reference.reference_features(self.source, d.name, self.extractor,
                                                      self.config.eval.num_real, self.log)
        return self._real

    def __call__(self, task, state) -> dict:
        """{'step', 'scores': {...}, and what the scores depend on}; pure in (state, config)."""
        e = self.config.eval
        if self.generator == "raw":
            state = state.replace(ema_params=None, ema_state=None)
        real = self.real_features()
        fake = sample.generate_images(task, state, self.num_samples, e.seed)
        out = self.extractor(fake)
        results = {}
        if "fid" in self.metrics:
            results["fid"] = scores.fid(real, out["features"])
        if "kid" in self.metrics:
            results["kid"], results["kid_std"] = scores.kid(
                real, out["features"], e.kid_subsets, e.kid_subset_size, seed=e.seed)
        if "is" in self.metrics:
            results["is"], results["is_std"] = scores.inception_score(out["logits"], e.is_splits)
        if "pr" in self.metrics:
            results["precision"], results["recall"] = scores.precision_recall(
                real, out["features"], e.pr_k)
        return {"step": int(parallel.to_host(state.step)), "scores": results,
                "generator": "ema" if state.ema_params is not None else "raw",
                "truncation": None, "num_samples": self.num_samples, "num_real": len(real),
                "sample_seed": e.seed, "data": self.config.data.name,
                "extractor": self.extractor.name, "extractor_fingerprint": self.extractor.fingerprint}


def is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if LOWER_IS_BETTER[metric] else value > best


def evaluate_workdir(workdir: str, checkpoint: str = "latest", **overrides) -> dict:
    """Restore a checkpoint of `workdir` ('latest', 'best' or a step) with its own config and score it."""
    run, state = sample.restore_workdir(workdir, checkpoint)
    evaluator = Evaluator.from_config(run.config, log=lambda m: print(m, file=sys.stderr),
                                      **overrides)
    return evaluator(run.task, state)


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    from gan_jax import cli

    cli.define_workdir("Training directory.")
    flags.DEFINE_string("checkpoint", "latest", "latest | best | a step number.")
    flags.DEFINE_integer("num_samples", 0, "Generated samples (default: the run's eval.num_samples).",
                         lower_bound=0)
    flags.DEFINE_string("metrics", "", "Comma-separated subset of fid,kid,is,pr (default: the run's).")
    flags.DEFINE_string("extractor", "", "classifier | classifier:DIR | inception | inception:PATH "
                                         "(default: the run's eval.extractor).")
    flags.DEFINE_enum("generator", "ema", list(GENERATORS),
                      "ema: the EMA generator when the run has one; raw: the live generator.")
    flags.DEFINE_string("out", "", "JSON output file "
                                   "(default: WORKDIR/eval/<checkpoint>_<step>[_raw].json).")

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)
        f = flags.FLAGS
        try:
            result = evaluate_workdir(f.workdir, f.checkpoint, num_samples=f.num_samples,
                                      metrics=f.metrics, extractor=f.extractor,
                                      generator=f.generator)
        except (FileNotFoundError, ValueError) as e:  # ConfigError, DataError, MetricError too
            cli.fail(str(e))
        suffix = "_raw" if f.generator == "raw" else ""
        name = f"{f.checkpoint}_{result['step']}{suffix}.json"
        out = Path(f.out or Path(f.workdir) / "eval" / name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
