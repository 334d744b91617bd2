"""Evaluating a generator (FID, KID, IS, precision/recall) during training and from the command line.

    python -m gan_jax.evaluate --workdir=DIR [--checkpoint=latest|best|STEP] [--num_samples=N]
        [--metrics=fid,kid,is,pr,cas] [--extractor=classifier|classifier:DIR|inception|inception:PATH]
        [--generator=ema|raw]

Samples come from the EMA generator (its params with its own collections) when the run has one,
or from the live generator with --generator=raw, with latents from `eval.seed` (the same
samples at every evaluation); no truncation is applied. Real features come from
`gan_jax.metrics.reference` (cached). Every result records the generator, truncation, sample and
real counts and the extractor, so numbers are only compared when those agree. `cas`
(class-conditional models) is the Classification Accuracy Score of the same samples
(`gan_jax.metrics.cas`).
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
from gan_jax.config import ConfigError
from gan_jax.data.image_pairs import ANKLE_BOOT, SNEAKER
from gan_jax.data.sources import ArraySource, DataError, make_source
from gan_jax.metrics import (LOWER_IS_BETTER, RESULT_KEYS, check_counts, parse_metrics, reference,
                             scores)

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


def require_conditional(metrics: tuple[str, ...], num_classes: int) -> None:
    """ValueError (one line) when `metrics` asks for cas of a model without classes."""
    if "cas" in metrics and not num_classes:
        raise ValueError("cas needs a class-conditional model (model.num_classes > 0); this "
                         "model is unconditional")


def feature_scores(metrics: tuple[str, ...], real: np.ndarray, out: dict[str, np.ndarray],
                   e: ml_collections.ConfigDict) -> dict[str, float]:
    """The `metrics` of generated features and logits `out` against real features (RESULT_KEYS)."""
    results = {}
    if "fid" in metrics:
        results["fid"] = scores.fid(real, out["features"])
    if "kid" in metrics:
        results["kid"], results["kid_std"] = scores.kid(
            real, out["features"], e.kid_subsets, e.kid_subset_size, seed=e.seed)
    if "is" in metrics:
        results["is"], results["is_std"] = scores.inception_score(out["logits"], e.is_splits)
    if "pr" in metrics:
        results["precision"], results["recall"] = scores.precision_recall(
            real, out["features"], e.pr_k)
    return results


def cas_scores(task, fake: np.ndarray, data: ml_collections.ConfigDict, seed: int
               ) -> tuple[dict[str, float], int]:
    """CAS of `fake` (samples 0.. of `seed`, labels drawn from their keys as `generate_images`
    draws them) and the same classifier's score on as many real images of data.name's train
    split, both tested on its test split; with the real count."""
    from gan_jax.metrics import cas, classifier

    labels = np.asarray(task.labels(sample.latent_keys(seed, 0, len(fake))))
    train, train_idx, test, test_idx, _ = classifier.train_test_sources(
        data.name, "", data.resolution, data.channels, data.data_dir or None)
    return cas.cas_scores(fake, labels, train, train_idx, test, test_idx, steps=cas.CAS_STEPS)


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
        require_conditional(metrics, config.model.num_classes)
        num_samples = overrides.get("num_samples") or e.num_samples
        extractor = (make_extractor(overrides.get("extractor") or e.extractor, config.data, log)
                     if set(metrics) - {"cas"} else None)  # cas trains classifiers of its own
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
        fake = sample.generate_images(task, state, self.num_samples, e.seed)
        results, found = {}, {"num_real": None, "extractor": None, "extractor_fingerprint": None}
        if self.extractor is not None:
            real = self.real_features()
            results = feature_scores(self.metrics, real, self.extractor(fake), e)
            found = {"num_real": len(real), "extractor": self.extractor.name,
                     "extractor_fingerprint": self.extractor.fingerprint}
        if "cas" in self.metrics:
            scores_, found["cas_num_real"] = cas_scores(task, fake, self.config.data, e.seed)
            results.update(scores_)
        return {"step": int(parallel.to_host(state.step)), "scores": results,
                "generator": "ema" if state.ema_params is not None else "raw",
                "truncation": None, "num_samples": self.num_samples, "sample_seed": e.seed,
                "data": self.config.data.name, **found}


# Image-to-image: the Fashion-MNIST recipes (data.dataset) are scored in the space of the
# Fashion-MNIST classifier, and by the share of translations it assigns to the target class of
# each of the data set's directions (None: the source image's own class).
FASHION_RECIPES = {"edges2fashion": {"a2b": None},
                   "fashion_sneakers2boots": {"a2b": ANKLE_BOOT, "b2a": SNEAKER}}


def classifier_data(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The data config whose classifier scores image-to-image `data`: Fashion-MNIST for the
    Fashion recipes; ConfigError for other data sets (no labels)."""
    if data.dataset not in FASHION_RECIPES:
        raise ConfigError(f"eval.extractor='classifier' needs labels, which the image-to-image data "
                          f"{data.dataset!r} lacks; use --extractor=inception")
    return ml_collections.ConfigDict({**data.to_dict(), "name": "fashion_mnist"})


def domains(test) -> dict[str, ArraySource]:
    """{'a': A, 'b': B} in-memory sources of an image-to-image split (paired or not)."""
    if test.paired:
        return {"a": ArraySource(f"{test.name}:A", test.a), "b": ArraySource(f"{test.name}:B", test.b)}
    return {side: ArraySource(source.name, source.get(np.arange(source.num_examples))["image"])
            for side, source in (("a", test.a), ("b", test.b))}


def _data_set_direction(data: ml_collections.ConfigDict, direction: str) -> str:
    """The data set's direction of the task's `direction` (swapped by data.direction BtoA)."""
    return {"a2b": "b2a", "b2a": "a2b"}[direction] if data.direction == "BtoA" else direction


def target_classes(data: ml_collections.ConfigDict, direction: str, count: int
                   ) -> np.ndarray | None:
    """(count,) classes the first `count` translations in the task's `direction` should be
    classified as (Fashion recipes, see FASHION_RECIPES), or None where none is defined."""
    direction = _data_set_direction(data, direction)
    targets = FASHION_RECIPES.get(data.dataset, {})
    if direction not in targets:
        return None
    if targets[direction] is not None:
        return np.full(count, targets[direction])
    labels = make_source("fashion_mnist:test", data.resolution, 1, data_dir=data.data_dir or None)
    return labels.labels[:count]


@dataclasses.dataclass
class TranslationEvaluator:
    """Scores of an image-to-image state on a split of its data (`test`: the pair source), per
    direction d of the task: 'd/l1', 'd/psnr', 'd/ssim' of the first `num_samples` translations
    against their targets (paired data), the feature `metrics` of those translations against the
    target domain's images, and 'd/class_share' for the Fashion recipes (see FASHION_RECIPES)."""

    config: ml_collections.ConfigDict
    test: object
    extractor: object
    metrics: tuple[str, ...]
    num_samples: int
    generator: str = "ema"
    classifier: object = None  # the Fashion recipes' classifier (class shares); None otherwise
    log: object = print

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, test, log=print,
                    **overrides) -> TranslationEvaluator:
        """As `Evaluator.from_config`; the classifier extractor is the Fashion recipes' (or the
        one of classifier:DIR, which then also gives the class shares)."""
        e, d = config.eval, config.data
        metrics = parse_metrics(overrides.get("metrics") or e.metrics)
        require_conditional(metrics, 0)
        spec = overrides.get("extractor") or e.extractor
        extractor = make_extractor(spec, classifier_data(d) if spec == "classifier" else d, log)
        classifier = None
        if d.dataset in FASHION_RECIPES:
            classifier = (extractor if spec.partition(":")[0] == "classifier"
                          else make_extractor("classifier", classifier_data(d), log))
        generator = overrides.get("generator") or "ema"
        if generator not in GENERATORS:
            raise ValueError(f"--generator must be one of {', '.join(GENERATORS)}, "
                             f"got {generator!r}")
        return cls(config, test, extractor, metrics,
                   overrides.get("num_samples") or e.num_samples, generator, classifier, log)

    def direction_scores(self, task, state, direction: str) -> tuple[dict[str, float], int, int]:
        """(scores, translations, real target images) of one direction."""
        from gan_jax.metrics import image_quality
        from gan_jax.translate import translate_images

        e, d = self.config.eval, self.config.data
        split = domains(self.test)
        source, target = (split["a"], split["b"]) if direction == "a2b" else (split["b"], split["a"])
        n = min(self.num_samples, source.num_examples)
        real = reference.reference_features(target, target.name, self.extractor, e.num_real,
                                            self.log)
        check_counts(self.metrics, n, len(real), e)
        fake = np.stack(translate_images(task, state, list(source.images[:n]),
                                         (d.resolution, d.resolution, d.channels), e.seed,
                                         direction, min(n, 64), self.log))
        results = {}
        if self.test.paired:
            results.update(image_quality.image_quality(fake, target.images[:n]))
        results.update(feature_scores(self.metrics, real, self.extractor(fake), e))
        wanted = target_classes(d, direction, n) if self.classifier is not None else None
        if wanted is not None:
            predicted = np.argmax(self.classifier(fake)["logits"], axis=-1)
            results["class_share"] = float(np.mean(predicted == wanted))
        return results, n, len(real)

    def __call__(self, task, state) -> dict:
        """{'step', 'scores': {'a2b/l1', ...}, and what the scores depend on}; pure in (state,
        config)."""
        if self.generator == "raw":
            state = state.replace(ema_params=None, ema_state=None)
        results, counts, reals = {}, {}, {}
        for direction in task.directions:
            scores_, counts[direction], reals[direction] = self.direction_scores(task, state,
                                                                                 direction)
            results.update({f"{direction}/{k}": v for k, v in scores_.items()})
        return {"step": int(parallel.to_host(state.step)), "scores": results,
                "generator": "ema" if state.ema_params is not None else "raw",
                "num_samples": counts, "num_real": reals, "sample_seed": self.config.eval.seed,
                "data": self.test.name, "extractor": self.extractor.name,
                "extractor_fingerprint": self.extractor.fingerprint}


AREA_BINS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6))  # mask area bins of co-mod-gan's tables


@dataclasses.dataclass
class InpaintingEvaluator:
    """Scores of an inpainting state on the first `num_samples` test images (`test`: the run's
    test source), each filled where its mask is 1, the mask drawn from image i's key
    image_keys(eval.seed, [i]) as `translate --seed=eval.seed`: L1, PSNR, SSIM over the whole
    image ('l1', ...) and over the hole ('hole/l1', ...) against the originals, means over all
    images (PSNR: of `image_quality`'s per-image values, an exact image or hole capped, never inf)
    and per mask-area bin AREA_BINS ('0-20%/hole/l1', ..., with '0-20%/count'); the feature
    `metrics` (FID, ...) of the fills against the test images; and for labelled data
    'class_share', the share of fills the data set's classifier assigns to the original's class."""

    config: ml_collections.ConfigDict
    test: object
    extractor: object
    metrics: tuple[str, ...]
    num_samples: int
    generator: str = "ema"
    classifier: object = None
    log: object = print

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, test, log=print,
                    **overrides) -> InpaintingEvaluator:
        """As `Evaluator.from_config`; the class shares use the data set's classifier (the
        extractor itself when it is one) when the test images are labelled."""
        e = config.eval
        spec = overrides.get("extractor") or e.extractor
        extractor = make_extractor(spec, config.data, log)
        classifier = None
        if test.num_classes:
            classifier = (extractor if spec.partition(":")[0] == "classifier"
                          else make_extractor("classifier", config.data, log))
        generator = overrides.get("generator") or "ema"
        if generator not in GENERATORS:
            raise ValueError(f"--generator must be one of {', '.join(GENERATORS)}, "
                             f"got {generator!r}")
        return cls(config, test, extractor, parse_metrics(overrides.get("metrics") or e.metrics),
                   overrides.get("num_samples") or e.num_samples, generator, classifier, log)

    def __call__(self, task, state) -> dict:
        """{'step', 'scores': {...}, and what the scores depend on}; pure in (state, config)."""
        from gan_jax.metrics import image_quality
        from gan_jax.translate import draw_masks, fill_images

        e, d = self.config.eval, self.config.data
        if self.generator == "raw":
            state = state.replace(ema_params=None, ema_state=None)
        n = min(self.num_samples, self.test.num_examples)
        batch = self.test.get(np.arange(n))
        originals = batch["image"]
        masks = np.stack(draw_masks(task, [originals.shape[1:3]] * n, e.seed))
        fills = np.stack(fill_images(task, state, list(originals), list(masks),
                                     originals.shape[1:], min(n, 64), self.log))
        per_image = {"l1": image_quality.l1(fills, originals),
                     "psnr": image_quality.psnr(fills, originals),
                     "ssim": image_quality.ssim(fills, originals),
                     **{f"hole/{k}": v for k, v in
                        image_quality.masked_quality(fills, originals, masks).items()}}
        results = {k: float(np.nanmean(v)) for k, v in per_image.items()}
        area = masks.mean(axis=(1, 2, 3))
        for lo, hi in AREA_BINS:
            inside = (area >= lo) & ((area < hi) if hi < AREA_BINS[-1][1] else (area <= hi))
            name = f"{round(lo * 100)}-{round(hi * 100)}%"
            results[f"{name}/count"] = int(inside.sum())
            if inside.any():
                results.update({f"{name}/{k}": float(np.nanmean(v[inside]))
                                for k, v in per_image.items()})
        real = reference.reference_features(self.test, self.test.name, self.extractor, e.num_real,
                                            self.log)
        check_counts(self.metrics, n, len(real), e)
        results.update(feature_scores(self.metrics, real, self.extractor(fills), e))
        if self.classifier is not None:
            predicted = np.argmax(self.classifier(fills)["logits"], axis=-1)
            results["class_share"] = float(np.mean(predicted == batch["label"]))
        return {"step": int(parallel.to_host(state.step)), "scores": results,
                "generator": "ema" if state.ema_params is not None else "raw",
                "num_samples": n, "num_real": len(real), "sample_seed": e.seed,
                "data": self.test.name, "extractor": self.extractor.name,
                "extractor_fingerprint": self.extractor.fingerprint}


def make_evaluator(run, source=None, log=print, **overrides):
    """The evaluator of `run`'s task: `InpaintingEvaluator` on its test images for inpainting,
    `TranslationEvaluator` on data.test_split for other image-to-image tasks, else `Evaluator`
    (on `source` when given)."""
    if "fill" in run.task.directions:
        return InpaintingEvaluator.from_config(run.config, run.data_source("test"), log,
                                               **overrides)
    if run.task.image_to_image:
        return TranslationEvaluator.from_config(
            run.config, run.data_source(run.config.data.test_split), log, **overrides)
    return Evaluator.from_config(run.config, source, log, **overrides)


def translation_best_metrics(config: ml_collections.ConfigDict, directions: tuple[str, ...],
                             paired: bool) -> tuple[str, ...]:
    """The scores `TranslationEvaluator` reports that can pick a best checkpoint, for a task
    translating `directions` on (paired) data: per direction 'd/l1', 'd/psnr', 'd/ssim' (paired),
    the ranked feature scores of eval.metrics ('d/fid', 'd/kid', ...), 'd/class_share' (Fashion
    recipes' directions with a target class)."""
    feature = [k for m in parse_metrics(config.eval.metrics) for k in RESULT_KEYS[m]
               if k in LOWER_IS_BETTER]
    names = []
    for d in directions:
        share = _data_set_direction(config.data, d) in FASHION_RECIPES.get(config.data.dataset, {})
        keys = [*(("l1", "psnr", "ssim") if paired else ()), *feature, *(("class_share",) * share)]
        names += [f"{d}/{k}" for k in keys]
    return tuple(names)


def check_best_metric(config: ml_collections.ConfigDict, directions: tuple[str, ...],
                      paired: bool) -> None:
    """ConfigError (one line) unless eval.best_metric is '' or one of `translation_best_metrics`."""
    names = translation_best_metrics(config, directions, paired)
    if config.eval.best_metric not in ("", *names):
        raise ConfigError(f"config.eval.best_metric: {config.eval.best_metric!r} is not reported by "
                          f"the image-to-image evaluation of this run; choose one of "
                          f"{', '.join(names)} or ''")


def is_better(metric: str, value: float, best: float | None) -> bool:
    """Whether `value` of `metric` (image-to-image: 'a2b/fid', ...) beats `best`."""
    if best is None:
        return True
    return value < best if LOWER_IS_BETTER[metric.rpartition("/")[2]] else value > best


def evaluate_workdir(workdir: str, checkpoint: str = "latest", **overrides) -> dict:
    """Restore a checkpoint of `workdir` ('latest', 'best' or a step) with its own config and score it."""
    run, state = sample.restore_workdir(workdir, checkpoint)
    evaluator = make_evaluator(run, log=lambda m: print(m, file=sys.stderr), **overrides)
    return evaluator(run.task, state)


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    from gan_jax import cli

    cli.define_workdir("Training directory.")
    flags.DEFINE_string("checkpoint", "latest", "latest | best | a step number.")
    flags.DEFINE_integer("num_samples", 0, "Generated samples (default: the run's eval.num_samples).",
                         lower_bound=0)
    flags.DEFINE_string("metrics", "", "Comma-separated subset of fid,kid,is,pr,cas (default: the run's).")
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
