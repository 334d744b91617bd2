"""Sampling: images from a state's generator (EMA when present), and the `sample` command.

    python -m gan_jax.sample --workdir=DIR --num=64 --seed=0 --out=grid.png   # or .npz
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path

import jax
import numpy as np

from gan_jax import images, parallel


@functools.partial(jax.jit, static_argnames=("task", "truncation"))
def _sample(task, params, g_state, keys, step, labels, z, truncation):
    return task.sample(params, g_state, keys, step, labels=labels, truncation=truncation, z=z)


def latent_keys(seed: int, start: int, count: int) -> jax.Array:
    """Keys of samples start..start+count-1 of `seed`: sample i is the same whatever the chunking."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(start, start + count))


def _sampler(task, state):
    """fn(keys, labels=None, z=None, truncation=None) -> uint8 images of the state's sampling params
    and their own collections (the EMA's when present) at its step, run on one device."""
    params = parallel.to_host(state.sampling_params)
    g_state = parallel.to_host(state.sampling_state)
    step = parallel.to_host(state.step)
    return lambda keys, labels=None, z=None, truncation=None: images.to_uint8(
        _sample(task, params, g_state, keys, step, labels, z, truncation))


def _labels(task, labels, count: int) -> np.ndarray | None:
    """None (drawn per sample), or `labels` (an int or `count` ints) checked against the task."""
    if labels is None:
        return None
    if not task.num_classes:
        raise ValueError("--label needs a class-conditional model (model.num_classes > 0)")
    labels = np.broadcast_to(np.asarray(labels, np.int32), (count,))
    bad = labels[(labels < 0) | (labels >= task.num_classes)]
    if bad.size:
        raise ValueError(f"label {int(bad[0])} is outside [0, {task.num_classes}): the model has "
                         f"{task.num_classes} classes")
    return labels


def generate_images(task, state, num: int, seed: int, chunk: int = 256, labels=None,
                    truncation: float | None = None) -> np.ndarray:
    """(num, H, W, C) uint8 samples of the state's sampling params (EMA when present).

    Sample i depends only on (seed, i): labels drawn from its key unless `labels` (an int or num
    ints) is given; `truncation` as in `ImageGANTask.sample`.
    """
    labels = _labels(task, labels, num)
    sampler = _sampler(task, state)
    out = [sampler(latent_keys(seed, i, min(chunk, num - i)),
                   None if labels is None else labels[i:i + chunk], truncation=truncation)
           for i in range(0, num, chunk)]
    return np.concatenate(out)


def class_grid(task, state, per_class: int, seed: int, truncation: float | None = None
               ) -> np.ndarray:
    """(num_classes * per_class, H, W, C) uint8: row c holds class c; column j uses the latent of
    sample j of `seed` in every row, so a column shows one latent across the classes."""
    if not task.num_classes:
        raise ValueError("--per_class needs a class-conditional model (model.num_classes > 0)")
    keys = jax.numpy.tile(latent_keys(seed, 0, per_class), task.num_classes)
    labels = np.repeat(np.arange(task.num_classes, dtype=np.int32), per_class)
    return _sampler(task, state)(keys, labels, truncation=truncation)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(1 - t) a + t b for each t: (T, D)."""
    return (1.0 - t[:, None]) * a[None] + t[:, None] * b[None]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation along the great circle from a to b (norms interpolated linearly);
    lerp where a and b are (anti)parallel. (T, D)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = np.clip(a @ b / (na * nb), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    direction = (np.sin((1 - t) * omega)[:, None] * ua + np.sin(t * omega)[:, None] * ub) / np.sin(omega)
    return direction * ((1 - t) * na + t * nb)[:, None]


INTERPOLATIONS = {"lerp": lerp, "slerp": slerp}


def interpolation_strips(task, state, rows: int, steps: int, seed: int, method: str = "slerp",
                         labels=None, truncation: float | None = None) -> np.ndarray:
    """(rows * steps, H, W, C) uint8: row r walks from the latent of sample 2r of `seed` to that of
    sample 2r + 1 in `steps` images; the row keeps the first key's noise inputs and label."""
    if method not in INTERPOLATIONS:
        raise ValueError(f"--interpolate must be one of {', '.join(INTERPOLATIONS)}, got {method!r}")
    if steps < 2:
        raise ValueError(f"--steps must be >= 2 for an interpolation, got {steps}")
    labels = _labels(task, labels, rows)
    sampler = _sampler(task, state)
    t = np.linspace(0.0, 1.0, steps)
    strips = []
    for r in range(rows):
        keys = latent_keys(seed, 2 * r, 2)
        za, zb = np.asarray(jax.jit(task.latents, static_argnums=1)(keys, truncation))
        z = INTERPOLATIONS[method](za, zb, t).astype(np.float32)
        row_keys = jax.numpy.repeat(keys[:1], steps)
        row_labels = task.labels(keys[:1]) if labels is None else labels[r:r + 1]
        row_labels = None if row_labels is None else np.repeat(np.asarray(row_labels), steps)
        strips.append(sampler(row_keys, row_labels, z, truncation))
    return np.concatenate(strips)


def write_samples(path: str | Path, samples: np.ndarray, columns: int | None = None) -> None:
    """A PNG grid (`columns` wide, square by default) for .png, the raw (N, H, W, C) uint8 array
    under key 'images' for .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        images.save_png(path, samples, columns)
    elif path.suffix == ".npz":
        with open(path, "wb") as f:  # np.savez on a file object: no timestamp-free zip guarantee
            np.savez(f, images=samples)
    else:
        raise ValueError(f"--out must end in .png or .npz, got {path.name!r}")


def restore_workdir(workdir: str, checkpoint: str = "latest"):
    """(run, state) of a checkpoint of `workdir`: 'latest', 'best' (WORKDIR/best/) or a step,
    restored on one device with the config saved beside it.

    Reads only: creates, moves and deletes nothing. 'latest' and 'best' fall back to the previous
    checkpoint (with a warning) when the newest cannot be read; a checkpoint deleted while it is
    read (a training run that keeps only the newest) makes it read the list again.
    """
    from gan_jax.checkpoint import Checkpoints

    if checkpoint not in ("latest", "best") and not checkpoint.isdigit():
        raise ValueError(f"--checkpoint must be latest, best or a step number, got {checkpoint!r}")
    best = checkpoint == "best"
    checkpoints = _retry_vanished(lambda: Checkpoints(
        workdir, subdir="best" if best else "checkpoints", read_only=True))
    try:
        return _restore_newest_readable(
            checkpoints, None if checkpoint in ("latest", "best") else int(checkpoint),
            "best " if best else "")
    finally:
        checkpoints.close()


def _restore_newest_readable(checkpoints, step: int | None, kind: str):
    """(run, state) of checkpoint `step`, or with None of the newest one that can be read.

    A read that fails is retried while the checkpoint is listed: a trainer deleting it (keep=1)
    makes it vanish from the list; one that fails twice while still listed is damaged.
    """
    import warnings

    import ml_collections

    from gan_jax import config as config_lib
    from gan_jax.config import ConfigError
    from gan_jax.run import build_run

    failures = collections.Counter()
    while True:
        steps = [s for s in _listed_steps(checkpoints) if failures[s] < 2 and step in (None, s)]
        if not steps:
            raise FileNotFoundError(
                f"no {'readable ' if failures else ''}{kind}checkpoint"
                f"{'' if step is None else f' {step}'} in {checkpoints.directory}; available: "
                f"{[s for s in _listed_steps(checkpoints) if failures[s] < 2] or 'none (train first)'}")
        newest = max(steps)
        try:
            config = ml_collections.ConfigDict(
                config_lib.with_added_keys(checkpoints.restore_config(newest)))
            run = build_run(config, devices=jax.devices()[:1])
            state, _ = checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh),
                                           newest)
            return run, state
        except ConfigError:  # the saved config is refused: not a damaged checkpoint
            raise
        except Exception as e:  # noqa: BLE001 (any read failure: being deleted, or damaged)
            failures[newest] += 1
            if failures[newest] == 2 and newest in _listed_steps(checkpoints):
                reason = (str(e).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"{kind}checkpoint step {newest} in {checkpoints.directory} is "
                              f"unreadable ({type(e).__name__}: {reason})"
                              f"{'; trying the previous one' if step is None else ''}",
                              RuntimeWarning, stacklevel=2)


def _listed_steps(checkpoints) -> list[int]:
    """The saved steps, listed again (a trainer may be saving or deleting one meanwhile)."""
    return _retry_vanished(lambda: (checkpoints.reload(), checkpoints.steps())[1])


def _retry_vanished(fn, attempts: int = 10):
    """fn(), called again when it fails because a step folder vanished while orbax listed it."""
    for attempt in range(attempts):
        try:
            return fn()
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def sample_from_workdir(workdir: str, num: int, seed: int, out: str, checkpoint: str = "latest",
                        label: int | None = None, truncation: float | None = None,
                        per_class: int = 0, interpolate: str = "", steps: int = 8) -> Path:
    """Write samples of a checkpoint of `workdir` (see `restore_workdir`) to `out`: `num` samples
    (all of class `label` when given), or with `per_class` a grid with one row per class, or with
    `interpolate` (lerp | slerp) `num` strips of `steps` images each."""
    if truncation is not None and truncation <= 0:
        raise ValueError(f"--truncation must be > 0, got {truncation}")
    run, state = restore_workdir(workdir, checkpoint)
    if run.task.image_to_image:
        raise ValueError(f"this workdir's model ({run.config.model.name}) translates images; use "
                         f"python -m gan_jax.translate --workdir={workdir} --input=... --out=...")
    if per_class:
        samples, columns = class_grid(run.task, state, per_class, seed, truncation), per_class
    elif interpolate:
        samples = interpolation_strips(run.task, state, num, steps, seed, interpolate, label,
                                       truncation)
        columns = steps
    else:
        samples = generate_images(run.task, state, num, seed, labels=label, truncation=truncation)
        columns = None
    write_samples(out, samples, columns)
    return Path(out)


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    from gan_jax import cli

    cli.define_workdir("Training directory holding checkpoints/.")
    flags.DEFINE_integer("num", 64, "Number of images (of strips with --interpolate).",
                         lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Sampling seed: the same seed gives the same images.",
                         lower_bound=0, upper_bound=2**32 - 1)
    flags.DEFINE_string("out", "samples.png", "Output file: .png (grid) or .npz (uint8 NHWC).")
    flags.DEFINE_string("checkpoint", "latest", "latest | best | a step number.")
    flags.DEFINE_integer("label", None, "Class of every sample (class-conditional models).",
                         lower_bound=0)
    flags.DEFINE_float("truncation", None, "Truncation: StyleGAN's psi (lerp towards the mean w), "
                       "else the latent's truncated-normal threshold. Default: none.")
    flags.DEFINE_integer("per_class", 0, "A grid with one row per class and this many columns.",
                         lower_bound=0)
    flags.DEFINE_enum("interpolate", "", ["", "lerp", "slerp"],
                      "Latent interpolation strips: --num rows of --steps images.")
    flags.DEFINE_integer("steps", 8, "Images per interpolation strip.", lower_bound=2)

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
        f = flags.FLAGS
        try:
            path = sample_from_workdir(f.workdir, f.num, f.seed, f.out, f.checkpoint, f.label,
                                       f.truncation, f.per_class, f.interpolate, f.steps)
        except (FileNotFoundError, ValueError) as e:
            cli.fail(str(e))
        print(f"wrote samples to {path}")

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
