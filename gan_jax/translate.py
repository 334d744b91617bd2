"""Image-to-image translation with a trained generator (pix2pix, CycleGAN), and the `translate` command.

    python -m gan_jax.translate --workdir=DIR --input=PATH --out=PATH [--direction=a2b|b2a]
        [--seed=S] [--checkpoint=latest|best|STEP] [--batch=N]

Input: one image file (output: one PNG), a folder (output: a folder of PNGs, each named after its
input's relative path) or an `.npz` with `images` uint8 (N, H, W, C) (output: an `.npz` with
`images`). Images are converted to the model's channels. The networks are fully convolutional: an
image whose size the generator takes (its own shape check, run abstractly) is translated at that
size; any other is resized (bicubic, both sides, aspect not kept) to the training resolution,
translated, and resized back to its own size. The choice is printed once per distinct size.

Image i (in sorted order for a folder, array order for an .npz) is translated with the key
fold_in(key(seed), i), as a batch of its own (the reference's test.py runs batch_size 1, so
BatchNorm at the paper's test time normalises with that image's own statistics), in a compiled
loop over --batch images: the output bytes depend only on the images, the seed and the
checkpoint, never on --batch or on the other images.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gan_jax import images as image_lib
from gan_jax import parallel
from gan_jax.data.sources import IMAGE_SUFFIXES, convert_channels, load_image, quantize

DIRECTIONS = ("a2b", "b2a")


def image_keys(seed: int, indices: np.ndarray) -> jax.Array:
    """Key of image i: fold_in(key(seed), i), one per index."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.asarray(indices, np.uint32))


@functools.partial(jax.jit, static_argnames=("task", "direction"))
def _translate(task, params, g_state, batch: jax.Array, keys: jax.Array, direction: str):
    """uint8 (B, H, W, C) -> float [-1, 1] outputs, image i translated alone with keys[i].

    A compiled loop (lax.map) over batches of one, not one batch of B (nor a vmap, which XLA
    batches): XLA:CPU rounds a conv of batch 4 differently from batch 1 (2e-7 measured on pix2pix),
    while every loop iteration is the same batch-1 computation, bitwise; and as fast on CPU."""
    one = lambda x_key: task.translate(params, g_state, x_key[0][None], x_key[1][None],
                                       direction)[0]
    return jax.lax.map(one, (image_lib.to_float(batch), keys))


def takes_size(task, params, g_state, shape: tuple[int, int, int], direction: str) -> bool:
    """Whether the generator accepts (H, W, C) images: its own shape check, traced abstractly."""
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    try:
        jax.eval_shape(lambda x: task.translate(params, g_state, x, image_keys(0, [0]), direction),
                       x)
    except (ValueError, TypeError):
        return False
    return True


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (h, w, C) -> uint8 (height, width, C), bicubic per channel (both sides squashed)."""
    if image.shape[:2] == (height, width):
        return image
    planes = [np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize(
        (width, height), Image.Resampling.BICUBIC)) for c in range(image.shape[-1])]
    return quantize(np.stack(planes, axis=-1))


def check_direction(task, direction: str) -> None:
    """ValueError (one line) unless the task translates in `direction`."""
    if direction not in task.directions:
        raise ValueError(f"this model translates {' and '.join(task.directions)} only, got "
                         f"--direction={direction}")


def translate_images(task, state, inputs: list[np.ndarray], image_shape: tuple[int, int, int],
                     seed: int, direction: str = "a2b", batch: int = 16, log=print,
                     progress: bool = False) -> list[np.ndarray]:
    """uint8 translations (H_i, W_i, C_out) of uint8 images (H_i, W_i, 1|3|4) by the state's
    sampling generator (EMA when present), image i with `image_keys(seed, [i])` (see module
    docstring). `image_shape`: the training (H, W, C); inputs are converted to C, and sizes the
    generator does not take go through (H, W) and back."""
    import tqdm

    check_direction(task, direction)
    params = parallel.to_host(state.sampling_params)
    g_state = parallel.to_host(state.sampling_state)
    channels = image_shape[2]
    inputs = [convert_channels(x, channels) for x in inputs]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(x.shape[:2], []).append(i)
    network_size = {}  # the size each input size is translated at, printed before the work
    for (h, w), indices in by_size.items():
        own = takes_size(task, params, g_state, (h, w, channels), direction)
        network_size[h, w] = (h, w) if own else image_shape[:2]
        log(f"{len(indices)} image(s) of {h}x{w}: " + (
            "translated at their own size" if own else
            f"the network does not take {h}x{w}; resized to {image_shape[0]}x{image_shape[1]}, "
            f"translated and resized back"))
    outputs: list[np.ndarray | None] = [None] * len(inputs)
    bar = tqdm.tqdm(total=len(inputs), unit="img", disable=not progress, file=sys.stderr)
    for (h, w), indices in by_size.items():
        net_h, net_w = network_size[h, w]
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            padded = chunk + chunk[-1:] * (batch - len(chunk))  # one compiled shape per size
            x = np.stack([resize(inputs[i], net_h, net_w) for i in padded])
            y = image_lib.to_uint8(_translate(task, params, g_state, x, image_keys(seed, padded),
                                              direction))
            for i, out in zip(chunk, y):
                outputs[i] = resize(out, h, w)
            bar.update(len(chunk))
    bar.close()
    return outputs


# ---------------------------------------------------------------------------------------------
# The command: reading the input, writing the output.


def read_input(path: str) -> tuple[str, list[str], list[np.ndarray]]:
    """(kind, names, images) of --input: kind 'file', 'folder' (names: relative paths, sorted)
    or 'npz'; uint8 (H, W, C) images. ValueError (one line) for anything unusable."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--input {path} does not exist")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise ValueError(f"--input {path} holds no image files "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        names = [f.relative_to(p).as_posix() for f in files]
        return "folder", names, [_load(f) for f in files]
    if p.suffix == ".npz":
        return "npz", [], list(_npz_images(p))
    return "file", [p.name], [_load(p)]


def _load(path: Path) -> np.ndarray:
    try:
        return load_image(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from None


def _npz_images(path: Path) -> np.ndarray:
    """The uint8 (N, H, W, C) array `images` of an .npz (C in 1, 3, 4; N >= 1)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data:
                raise ValueError(f"--input {path} has no array 'images' (it has: "
                                 f"{', '.join(data.files) or 'nothing'}); save the images under "
                                 f"that key")
            images = data["images"]
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read --input {path} as .npz: {e}") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"--input {path}: 'images' must be uint8 (N, H, W, C) with C 1, 3 or 4, "
                         f"got {images.dtype} of shape {images.shape}")
    if not len(images):
        raise ValueError(f"--input {path}: 'images' holds no images")
    return images


def output_paths(kind: str, names: list[str], out: str) -> list[Path]:
    """Where each output goes: `out` itself (file: a .png; npz: a .npz), or out/NAME.png for a
    folder. ValueError (one line) when `out` does not fit the input or two names collide."""
    out_path = Path(out)
    want = {"file": ".png", "npz": ".npz"}.get(kind)
    if want and out_path.suffix != want:
        raise ValueError(f"--out must end in {want} for {'an .npz' if kind == 'npz' else 'an image'}"
                         f" input, got {out_path.name!r}")
    if kind != "folder":
        return [out_path]
    if out_path.is_file():
        raise ValueError(f"--out {out} is a file; a folder input needs an output folder")
    paths = [out_path / Path(name).with_suffix(".png") for name in names]
    seen: dict[Path, str] = {}
    for name, path in zip(names, paths):
        if path in seen:
            raise ValueError(f"{seen[path]} and {name} would both be written as "
                             f"{path.relative_to(out_path)}; rename one")
        seen[path] = name
    return paths


def write_png(path: Path, image: np.ndarray) -> None:
    """One uint8 (H, W, 1|3) image as a PNG; the same image gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, format="PNG")


def require_image_to_image(run) -> None:
    """ValueError (one line) pointing to `sample` when the run's model makes images from noise."""
    if not run.task.image_to_image:
        raise ValueError(f"this workdir's model ({run.config.model.name}) makes images from noise, "
                         f"not from images; use python -m gan_jax.sample")


def translate_path(workdir: str, input_path: str, out: str, direction: str = "a2b", seed: int = 0,
                   checkpoint: str = "latest", batch: int = 16, log=print) -> Path:
    """Translate `input_path` with a checkpoint of `workdir` (see `sample.restore_workdir`) and
    write the result to `out`; every check runs before anything is written."""
    from gan_jax.sample import restore_workdir, write_samples

    if direction not in DIRECTIONS:
        raise ValueError(f"--direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    kind, names, inputs = read_input(input_path)
    paths = output_paths(kind, names, out)
    run, state = restore_workdir(workdir, checkpoint)
    require_image_to_image(run)
    check_direction(run.task, direction)
    outputs = translate_images(run.task, state, inputs, run.image_shape, seed, direction, batch,
                               log, progress=kind != "file")
    if kind == "npz":
        write_samples(paths[0], np.stack(outputs))
    else:
        for path, image in zip(paths, outputs):
            write_png(path, image)
    return Path(out)


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    from gan_jax import cli

    cli.define_workdir("Training directory holding checkpoints/.")
    flags.DEFINE_string("input", None, "An image file, a folder of images or an .npz with "
                                       "'images' uint8 (N, H, W, C).", required=True)
    flags.DEFINE_string("out", None, "Output: a .png (image input), a folder (folder input) or an "
                                     ".npz (.npz input).", required=True)
    flags.DEFINE_string("direction", "a2b", "a2b | b2a (CycleGAN only).")
    flags.DEFINE_integer("seed", 0, "Seed of the per-image keys (dropout at the paper's test "
                                    "time): the same seed gives the same bytes.",
                         lower_bound=0, upper_bound=2**32 - 1)
    flags.DEFINE_string("checkpoint", "latest", "latest | best | a step number.")
    flags.DEFINE_integer("batch", 16, "Images per compiled call (the output does not depend on it).",
                         lower_bound=1)

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every restore at INFO
        f = flags.FLAGS
        try:
            path = translate_path(f.workdir, f.input, f.out, f.direction, f.seed, f.checkpoint,
                                  f.batch)
        except (FileNotFoundError, ValueError) as e:
            cli.fail(str(e))
        print(f"wrote translations to {path}")

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
