"""Sampling: images from a state's generator (EMA when present), and the `sample` command.

    python -m gan_jax.sample --workdir=DIR --num=64 --seed=0 --out=grid.png   # or .npz
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import jax
import numpy as np

from gan_jax import images, parallel


@functools.partial(jax.jit, static_argnums=(0,))
def _generate(task, params, g_state, keys):
    fake, _ = task.generate(params, g_state, task.latents(keys), train=False)
    return fake


def latent_keys(seed: int, start: int, count: int) -> jax.Array:
    """Keys of samples start..start+count-1 of `seed`: sample i is the same whatever the chunking."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(start, start + count))


def generate_images(task, state, num: int, seed: int, chunk: int = 256) -> np.ndarray:
    """(num, H, W, C) uint8 samples of the state's sampling params (EMA when present)."""
    params = parallel.to_host(state.sampling_params)
    g_state = parallel.to_host(state.g_state)
    out = [images.to_uint8(_generate(task, params, g_state, latent_keys(seed, i, min(chunk, num - i))))
           for i in range(0, num, chunk)]
    return np.concatenate(out)


def write_samples(path: str | Path, samples: np.ndarray) -> None:
    """A PNG grid for .png, the raw (N, H, W, C) uint8 array under key 'images' for .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        images.save_png(path, samples)
    elif path.suffix == ".npz":
        with open(path, "wb") as f:  # np.savez on a file object: no timestamp-free zip guarantee
            np.savez(f, images=samples)
    else:
        raise ValueError(f"--out must end in .png or .npz, got {path.name!r}")


def restore_workdir(workdir: str, checkpoint: str = "latest"):
    """(run, state) of a checkpoint of `workdir`: 'latest', 'best' (WORKDIR/best/) or a step,
    restored on one device with the config saved beside it."""
    import ml_collections

    from gan_jax.checkpoint import Checkpoints
    from gan_jax.run import build_run

    if checkpoint not in ("latest", "best") and not checkpoint.isdigit():
        raise ValueError(f"--checkpoint must be latest, best or a step number, got {checkpoint!r}")
    best = checkpoint == "best"
    checkpoints = Checkpoints(workdir, subdir="best" if best else "checkpoints")
    try:
        step = None if checkpoint in ("latest", "best") else int(checkpoint)
        if checkpoints.latest_step() is None or (step is not None and step not in checkpoints.steps()):
            raise FileNotFoundError(
                f"no {'best ' if best else ''}checkpoint{'' if step is None else f' {step}'} in "
                f"{checkpoints.directory}; available: {checkpoints.steps() or 'none (train first)'}")
        config = ml_collections.ConfigDict(checkpoints.restore_config(step))
        run = build_run(config, devices=jax.devices()[:1])
        state, _ = checkpoints.restore(run.abstract_state(), parallel.replicated(run.mesh), step)
    finally:
        checkpoints.close()
    return run, state


def sample_from_workdir(workdir: str, num: int, seed: int, out: str,
                        checkpoint: str = "latest") -> Path:
    """Write `num` samples of a checkpoint of `workdir` (see `restore_workdir`) to `out`."""
    run, state = restore_workdir(workdir, checkpoint)
    write_samples(out, generate_images(run.task, state, num, seed))
    return Path(out)


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    flags.DEFINE_string("workdir", None, "Training directory holding checkpoints/.", required=True)
    flags.DEFINE_integer("num", 64, "Number of images.")
    flags.DEFINE_integer("seed", 0, "Sampling seed: the same seed gives the same images.")
    flags.DEFINE_string("out", "samples.png", "Output file: .png (grid) or .npz (uint8 NHWC).")
    flags.DEFINE_string("checkpoint", "latest", "latest | best | a step number.")

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
        f = flags.FLAGS
        try:
            path = sample_from_workdir(f.workdir, f.num, f.seed, f.out, f.checkpoint)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        print(f"wrote {f.num} samples to {path}")

    app.run(_main, argv=argv)


if __name__ == "__main__":
    main()
