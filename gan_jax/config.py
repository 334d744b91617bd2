"""Config checks run before anything is compiled, and the config comparison used on resume."""

from __future__ import annotations

import json
from typing import Any

import ml_collections

from gan_jax import augment, losses, optim, precision
from gan_jax import metrics as metrics_lib
from gan_jax.data.sources import MIXED_CHANNELS
from gan_jax.models import MODEL_CHECKS, MODEL_COMPUTE_DTYPES, MODELS

NORMS = ("batch", "layer", "none")
# Keys that do not change the math of a run: changing them on resume continues the run.
NON_MATH_PREFIXES = ("inpaint.test_data", "train.num_steps", "train.log_every_steps", "train.sample_every_steps",
                     "train.on_nonfinite", "train.max_skipped_steps",
                     "checkpoint.", "sample.", "eval.", "allow_config_change", "data.data_dir",
                     "data.workers", "data.cache")
NONFINITE_POLICIES = ("stop", "skip")
DIRECTIONS = ("AtoB", "BtoA")  # image-to-image data: as stored, or A and B swapped
# model keys only the image-to-image families read
_IMAGE_TO_IMAGE_MODEL_KEYS = ("generator", "discriminator", "n_layers", "norm", "ngf", "ndf",
                              "dropout", "paper_test_time")
R1_MODES = ("separate", "folded")
# the image-to-image models: their eval.best_metric names a direction's score ('a2b/l1'), checked
# against what their evaluation reports when training starts (evaluate.check_best_metric)
IMAGE_TO_IMAGE_MODELS = ("pix2pix", "cyclegan")
AUGMENT_KINDS = ("diffaugment", "ada", "fixed")


class ConfigError(ValueError):
    """A bad config value; str(e) is one line naming the key and what to do."""


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config.{key}: {message}")


def _choice(config: ml_collections.ConfigDict, key: str, choices) -> None:
    value = config
    for part in key.split("."):
        value = value[part]
    _require(value in choices, key, f"{value!r} is not one of {', '.join(sorted(choices))}")


def _check_optimizer(config: ml_collections.ConfigDict, name: str) -> None:
    c = config.optim[name]
    _choice(config, f"optim.{name}.name", optim.OPTIMIZERS)
    _choice(config, f"optim.{name}.schedule", optim.SCHEDULES)
    _require(c.learning_rate > 0, f"optim.{name}.learning_rate", "must be > 0")
    _require(c.schedule == "constant" or c.decay_steps > 0, f"optim.{name}.decay_steps",
             f"must be > 0 for schedule {c.schedule!r}")
    _require(0 <= c.decay < 1, f"optim.{name}.decay", "must be in [0, 1)")
    _require(c.grad_clip_norm >= 0, f"optim.{name}.grad_clip_norm", "must be >= 0")
    for key in ("b1", "b2", "momentum"):
        _require(0 <= c[key] < 1, f"optim.{name}.{key}", f"must be in [0, 1), got {c[key]}")
    # eps = 0 divides by zero where a gradient stays 0 (Adam, RMSProp).
    _require(c.eps > 0, f"optim.{name}.eps", f"must be > 0, got {c.eps}")
    _require(c.weight_decay >= 0, f"optim.{name}.weight_decay", "must be >= 0")
    _require(c.warmup_steps >= 0, f"optim.{name}.warmup_steps", "must be >= 0")
    _require(c.constant_steps >= 0, f"optim.{name}.constant_steps", "must be >= 0")
    _require(c.decay_steps >= 0, f"optim.{name}.decay_steps", "must be >= 0")


def validate(config: ml_collections.ConfigDict, num_devices: int = 1, num_processes: int = 1) -> None:
    """Raise ConfigError (naming the key) for any value the run cannot use."""
    _choice(config, "model.name", MODELS)
    _choice(config, "loss.name", losses.LOSSES)
    _choice(config, "model.g_norm", NORMS)
    _choice(config, "model.d_norm", NORMS)
    for name in ("g", "d"):
        _check_optimizer(config, name)
    _choice(config, "data.mixed_channels", MIXED_CHANNELS)
    _require(config.data.channels in (1, 3), "data.channels", "must be 1 (grayscale) or 3 (RGB)")
    _require(config.data.resolution >= 4, "data.resolution", "must be >= 4")
    _require(0 < config.data.train_fraction <= 1, "data.train_fraction", "must be in (0, 1]")
    _require(0 <= config.data.subset_seed < 2**32, "data.subset_seed", "must be in [0, 2**32)")
    _choice(config, "data.direction", DIRECTIONS)
    _require(config.data.workers >= 0, "data.workers", "must be >= 0 (0: one per core)")
    try:
        MODEL_CHECKS[config.model.name](config)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    m = config.model
    _require(m.num_classes >= 0, "model.num_classes", "must be >= 0 (0: unconditional)")
    _require(m.latent_dim >= 1, "model.latent_dim", "must be >= 1")
    _require(m.width >= 1, "model.width", f"must be >= 1, got {m.width}")
    _require(all(d >= 1 for d in m.hidden_dims), "model.hidden_dims",
             f"every entry must be >= 1, got {tuple(m.hidden_dims)}")
    _require(0 <= m.bn_momentum <= 1, "model.bn_momentum",
             f"must be in [0, 1] (the running average's decay), got {m.bn_momentum}")
    train = config.train
    _require(0 <= train.seed < 2**32, "train.seed", f"must be in [0, 2**32), got {train.seed}")
    _require(train.n_critic >= 1, "train.n_critic", "must be >= 1")
    _require(train.num_steps >= 0, "train.num_steps", "must be >= 0")
    _require(train.batch_size >= 1, "train.batch_size", "must be >= 1")
    _require(train.batch_size % num_devices == 0, "train.batch_size",
             f"{train.batch_size} is not divisible by the {num_devices} devices; use a multiple of "
             f"{num_devices}")
    _require(train.batch_size % num_processes == 0, "train.batch_size",
             f"{train.batch_size} is not divisible by the {num_processes} processes")
    _require(train.g_batch_size >= 0, "train.g_batch_size", "must be >= 0 (0: batch_size)")
    _require(train.g_batch_size % num_devices == 0, "train.g_batch_size",
             f"{train.g_batch_size} is not divisible by the {num_devices} devices; use a multiple "
             f"of {num_devices}")
    _choice(config, "train.on_nonfinite", NONFINITE_POLICIES)
    _choice(config, "train.compute_dtype", precision.COMPUTE_DTYPES)
    dtypes = MODEL_COMPUTE_DTYPES.get(config.model.name, ("float32",))
    _require(train.compute_dtype in dtypes, "train.compute_dtype",
             f"model {config.model.name!r} runs in {' or '.join(dtypes)}, not "
             f"{train.compute_dtype}")
    _require(train.max_skipped_steps >= 0, "train.max_skipped_steps", "must be >= 0")
    _require(train.log_every_steps >= 1, "train.log_every_steps", "must be >= 1")
    _require(train.sample_every_steps >= 0, "train.sample_every_steps", "must be >= 0 (0: never)")
    _require(config.checkpoint.every_steps >= 1, "checkpoint.every_steps", "must be >= 1")
    _require(config.checkpoint.keep >= 1, "checkpoint.keep", "must be >= 1")
    _require(0.0 <= config.ema.decay < 1.0, "ema.decay", "must be in [0, 1) (0 disables the EMA)")
    _require(config.ema.start_step >= 0, "ema.start_step", "must be >= 0")
    _require(config.sample.num >= 1, "sample.num", "must be >= 1")
    _check_eval(config)
    for key in ("gp_weight", "r1_weight", "clip_value", "ortho_weight"):
        _require(config.loss[key] >= 0, f"loss.{key}", "must be >= 0")
    _choice(config, "loss.r1_mode", R1_MODES)
    _require(config.loss.pl_weight >= 0, "loss.pl_weight", "must be >= 0 (0: no path length)")
    _require(not config.loss.pl_weight or config.model.name == "stylegan2", "loss.pl_weight",
             "path length regularisation needs model.name='stylegan2'")
    _require(config.loss.pl_every >= 1, "loss.pl_every", "must be >= 1")
    _require(0 <= config.loss.pl_decay <= 1, "loss.pl_decay", "must be in [0, 1]")
    _require(config.loss.pl_batch_shrink >= 1, "loss.pl_batch_shrink", "must be >= 1")
    _require(config.loss.r1_every >= 1, "loss.r1_every", "must be >= 1 (1: R1 at every step)")
    try:
        augment.parse_policy(config.augment.policy)
    except ValueError as e:
        raise ConfigError(f"config.augment.policy: {e}") from None
    _check_augment(config.augment)
    if (config.loss.gp_weight or config.loss.r1_weight) and config.model.name == "dcgan":
        _require(config.model.d_norm != "batch", "model.d_norm",
                 "gradient penalties (loss.gp_weight, loss.r1_weight) are per example and need a "
                 "discriminator without batch norm; use 'layer' or 'none'")


def _check_augment(a: ml_collections.ConfigDict) -> None:
    _require(a.kind in AUGMENT_KINDS, "augment.kind",
             f"{a.kind!r} is not one of {', '.join(AUGMENT_KINDS)}")
    _require(a.kind == "diffaugment" or not a.policy, "augment.policy",
             f"is DiffAugment's; set it to '' with augment.kind={a.kind!r}")
    _require(a.p >= 0, "augment.p", "must be >= 0")
    _require(0 <= a.ada_target <= 1, "augment.ada_target", "must be in [0, 1]")
    _require(a.ada_interval >= 1, "augment.ada_interval", "must be >= 1")
    _require(a.ada_kimg > 0, "augment.ada_kimg", "must be > 0")


def _check_eval(config: ml_collections.ConfigDict) -> None:
    e = config.eval
    _require(e.every_steps >= 0, "eval.every_steps", "must be >= 0 (0: never)")
    try:
        metrics = metrics_lib.parse_metrics(e.metrics)
    except ValueError as err:
        raise ConfigError(f"config.eval.metrics: {err}") from None
    _require("cas" not in metrics or config.model.num_classes > 0, "eval.metrics",
             "cas needs a class-conditional model (model.num_classes > 0)")
    _require(e.extractor.partition(":")[0] in ("classifier", "inception"), "eval.extractor",
             f"{e.extractor!r} is not classifier, classifier:DIR, inception or inception:PATH")
    for key in ("kid_subsets", "kid_subset_size", "is_splits", "pr_k"):
        _require(e[key] >= 1, f"eval.{key}", "must be >= 1")
    _require(e.num_real >= 0, "eval.num_real", "must be >= 0 (0: the whole data set)")
    _require(0 <= e.seed < 2**32, "eval.seed", f"must be in [0, 2**32), got {e.seed}")
    try:
        metrics_lib.check_counts(metrics, e.num_samples, None, e)
    except ValueError as err:
        raise ConfigError(f"config.eval.num_samples: {err}") from None
    reported = [k for m in metrics for k in metrics_lib.RESULT_KEYS[m]
                if k in metrics_lib.LOWER_IS_BETTER]
    _require(e.best_metric in ("", *reported) or config.model.name in IMAGE_TO_IMAGE_MODELS,
             "eval.best_metric",
             f"{e.best_metric!r} is not computed; choose one of {', '.join(reported)} or ''")


# The most the EMA generator at a run's last step may still weigh the generator it started from
# before `train` says so (BigGAN-PyTorch's EMA, decay 0.9999 from iteration 20,000 of 100k+,
# leaves it 0.03 % or less).
EMA_START_WEIGHT_LIMIT = 0.05


def ema_start_weight(config: ml_collections.ConfigDict) -> float:
    """ema.decay ** (train.num_steps - ema.start_step): the weight the EMA generator at the run's
    last step still gives the generator it was started from (a copy of the step-`start_step`
    generator); 0 without an EMA or when the run ends before it starts."""
    steps = config.train.num_steps - config.ema.start_step
    return float(config.ema.decay) ** steps if config.ema.decay and steps > 0 else 0.0


def ema_start_note(config: ml_collections.ConfigDict) -> str | None:
    """One line for the user when the EMA is too slow for the run (`ema_start_weight` above
    EMA_START_WEIGHT_LIMIT: its samples are largely the early generator's); else None."""
    weight = ema_start_weight(config)
    if weight <= EMA_START_WEIGHT_LIMIT:
        return None
    e, n = config.ema, config.train.num_steps
    return (f"note: ema.decay {e.decay} from ema.start_step {e.start_step} leaves the step-"
            f"{e.start_step} generator {weight:.0%} of the EMA generator at step {n}; for a run "
            f"this short use a smaller ema.decay or a later ema.start_step")


def require_fits(need: int | None, have: int | None, batch_size: int, platform: str) -> None:
    """ConfigError naming train.batch_size when a step needing `need` bytes per device cannot fit
    in `have` (either None: not reported by the backend, no check)."""
    if need is not None and have is not None:
        _require(need <= have, "train.batch_size",
                 f"{batch_size} does not fit: the train step needs about {need / 2**30:.3g} GiB "
                 f"per device (XLA's estimate), more than the {have / 2**30:.3g} GiB available "
                 f"per {platform} device; lower train.batch_size (or the model's width)")


def to_plain(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """JSON-compatible nested dict of a config (tuples become lists)."""
    return json.loads(config.to_json())


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _keys_added_since_0_1(cur: dict[str, Any]) -> dict[str, Any]:
    """Keys added after runs were first checkpointed, with the value that does what runs made
    before them did (given the new flat config `cur`): a saved config without the key compares as
    if it held that value, so an older workdir resumes unless the new config changes the math."""
    lazy_r1 = cur.get("loss.r1_weight") and cur.get("loss.r1_every", 1) > 1
    return {"train.g_batch_size": 0, "model.weight_init": "xavier",
            "loss.r1_mode": "folded" if lazy_r1 else cur.get("loss.r1_mode"),  # unused without it
            "optim.g.decay": 0.9, "optim.d.decay": 0.9,  # optax's rmsprop default
            "optim.g.eps_in_sqrt": True, "optim.d.eps_in_sqrt": True,
            "optim.g.constant_steps": 0, "optim.d.constant_steps": 0,
            **{f"data.{k}": v for k, v in (("dataset", ""), ("load_size", 0), ("test_split", "test"),
                                                       ("direction", "AtoB"),
                                                       ("train_fraction", 1.0), ("subset_seed", 0),
                                                       ("workers", 1), ("cache", "off"))},
            # pix2pix always flipped, CycleGAN never did; unused by the other models
            "data.flip": {"pix2pix": True, "cyclegan": False}.get(cur.get("model.name"),
                                                                   cur.get("data.flip")),
            **{f"model.{k}": cur.get(f"model.{k}") for k in _IMAGE_TO_IMAGE_MODEL_KEYS},  # unused
            "loss.l1_weight": cur.get("loss.l1_weight"),  # unused by the earlier models
            "loss.gan_weight": 1.0,
            **{f"loss.{k}": cur.get(f"loss.{k}")  # CycleGAN's, unused by the earlier models
               for k in ("cycle_weight", "identity_weight", "pool_size")},
            **{f"inpaint.{k}": cur.get(f"inpaint.{k}")  # inpainting's, unused by the others
               for k in ("mask_kinds", "area_range", "dilations", "gan_weight", "hole_weight",
                         "valid_weight", "test_data")},
            "augment.kind": "diffaugment", "loss.pl_weight": 0.0, "train.compute_dtype": "float32",
            **{f"loss.{k}": cur.get(f"loss.{k}")  # path length's, unused without it
               for k in ("pl_every", "pl_decay", "pl_batch_shrink")},
            **{f"augment.{k}": cur.get(f"augment.{k}")  # ADA's, unused by DiffAugment
               for k in ("p", "ada_target", "ada_interval", "ada_kimg")}}


def with_added_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved plain config with each key added since 0.1 that it lacks set as
    `_keys_added_since_0_1` says (the behaviour of runs made before the key), so `sample`,
    `evaluate` and `export` read older workdirs."""
    from gan_jax.configs import base

    flat = _flatten(saved)
    added = _keys_added_since_0_1({**_flatten(to_plain(base.get_config())), **flat})
    filled = json.loads(json.dumps(saved))
    for key, value in added.items():
        if key not in flat:
            *parents, leaf = key.split(".")
            node = filled
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return filled


def math_changes(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key that differs and changes the math of a run."""
    old, cur = _flatten(saved), _flatten(new)
    old = {**{k: v for k, v in _keys_added_since_0_1(cur).items() if k in cur}, **old}
    return [f"{k}: {old.get(k, '<absent>')!r} -> {cur.get(k, '<absent>')!r}"
            for k in sorted(set(old) | set(cur))
            if old.get(k) != cur.get(k) and not k.startswith(NON_MATH_PREFIXES)]
