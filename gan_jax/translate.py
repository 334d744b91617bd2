"""Image-to-image translation with a trained generator (pix2pix, CycleGAN), and the `translate` command.

    python -m gan_jax.translate --workdir=DIR --input=PATH --out=PATH [--direction=a2b|b2a]
        [--seed=S] [--checkpoint=latest|best|STEP] [--batch=N] [--mask=box|free|PATH --save_masks]

Input: one image file (output: one PNG), a folder (output: a folder of PNGs, each named after its
input's relative path) or an `.npz` with `images` uint8 (N, H, W, C) (output: an `.npz` with
`images`). Images are converted to the model's channels. The networks are fully convolutional: an
image whose size the generator takes (its own shape check, run abstractly) is translated at that
size; any other is resized (bicubic, both sides, aspect not kept) to the training resolution,
translated, and resized back to its own size. The choice is printed once per distinct size.

Inpainting workdirs (direction 'fill') take `--mask`: box | free (drawn from image i's key at
its own size, the task's `masks` stream and area range), "" (the run's inpaint.mask_kinds), or a
PATH: an .npz with `masks` (N, H, W) or (N, H, W, 1) of 0/1 (1 = missing), or a folder of mask
images matched to the inputs by relative path (any image suffix; 0 known, 255 missing). A mask of
another size than its image, or all 0, all 1 or not binary, stops the command with one line before
anything is written. Outputs keep every known pixel of the input bit for bit (composited at the
image's own size, also when the network ran at the training size); `--save_masks` writes the
masks used (PNG: NAME_mask.png beside each output, 0/255; .npz: key `masks`, 0/1).

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

DIRECTIONS = ("a2b", "b2a", "fill")


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


@functools.partial(jax.jit, static_argnames=("task",))
def _fill(task, params, g_state, batch: jax.Array, masks_: jax.Array):
    """uint8 (B, H, W, C) and 0/1 masks (B, H, W, 1) -> float [-1, 1] fills, image by image (a
    compiled loop over batches of one, as `_translate`)."""
    one = lambda xm: task.fill(params, g_state, xm[0][None], xm[1][None])[0]
    return jax.lax.map(one, (image_lib.to_float(batch), masks_.astype(jnp.float32)))


def draw_masks(task, shapes: list[tuple[int, int]], seed: int, kind: str = "") -> list[np.ndarray]:
    """uint8 0/1 (H_i, W_i, 1) masks, mask i drawn at shapes[i] from `image_keys(seed, [i])`'s
    MASK stream (the task's `masks`), of `kind` (box | free; "": the task's mask kinds)."""
    import dataclasses

    if kind:
        task = dataclasses.replace(task, mask_kinds=(kind,))
    out: list[np.ndarray | None] = [None] * len(shapes)
    for shape in dict.fromkeys(shapes):
        indices = [i for i, s in enumerate(shapes) if s == shape]
        drawn = np.asarray(jax.jit(lambda keys: task.masks(keys, shape))(
            image_keys(seed, indices))).astype(np.uint8)
        for i, m in zip(indices, drawn):
            out[i] = m
    return out


def read_masks(path: str, names: list[str], count: int) -> list[np.ndarray]:
    """uint8 0/1 (H, W, 1) masks from an .npz (`masks`, (N, H, W) or (N, H, W, 1), 0/1) or a
    folder of mask images (0/255) named as the inputs (`names`: their relative paths; none for
    an .npz input: 0.png, 1.png, ...); ValueError (one line) otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--mask {path} does not exist (use box, free or a path)")
    if p.is_dir():
        by_stem = {f.relative_to(p).with_suffix("").as_posix(): f for f in sorted(p.rglob("*"))
                   if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()}
        stems = [Path(n).with_suffix("").as_posix() for n in names] or [str(i) for i in range(count)]
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise ValueError(f"--mask {path} has no mask image for {missing[0]} (masks are matched "
                             f"to the inputs by relative path, any image suffix)")
        out = []
        for stem in stems:
            m = _load(by_stem[stem])[..., :1]
            if not np.isin(m, (0, 255)).all():
                raise ValueError(f"mask {by_stem[stem]} is not binary: mask images must hold 0 "
                                 f"(known) and 255 (missing) only")
            out.append((m // 255).astype(np.uint8))
        return out
    try:
        with np.load(p, allow_pickle=False) as data:
            if "masks" not in data:
                raise ValueError(f"--mask {path} has no array 'masks'")
            masks_ = data["masks"]
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read --mask {path} as .npz: {e}") from None
    if masks_.ndim == 3:
        masks_ = masks_[..., None]
    if masks_.ndim != 4 or masks_.shape[-1] != 1 or len(masks_) != count:
        raise ValueError(f"--mask {path}: 'masks' must be (N, H, W) or (N, H, W, 1) with N = "
                         f"{count} inputs, got shape {masks_.shape}")
    if not np.isin(masks_, (0, 1)).all():
        raise ValueError(f"--mask {path}: masks must be binary (0 = known, 1 = missing), got "
                         f"values {np.unique(masks_)[:6].tolist()}")
    return list(masks_.astype(np.uint8))


def check_masks(masks_: list[np.ndarray], inputs: list[np.ndarray]) -> None:
    """ValueError (one line) for a mask of another size than its image, or all 0 or all 1."""
    for i, (m, x) in enumerate(zip(masks_, inputs)):
        if m.shape[:2] != x.shape[:2]:
            raise ValueError(f"mask {i} is {m.shape[0]}x{m.shape[1]} but its image is "
                             f"{x.shape[0]}x{x.shape[1]}")
        if not m.any():
            raise ValueError(f"mask {i} is all 0: it marks no pixel missing, nothing to fill")
        if m.all():
            raise ValueError(f"mask {i} is all 1: every pixel is missing, nothing to fill from")


def fill_images(task, state, inputs: list[np.ndarray], masks_: list[np.ndarray],
                image_shape: tuple[int, int, int], batch: int = 16, log=print) -> list[np.ndarray]:
    """uint8 fills of uint8 images (H_i, W_i, C) where masks_[i] (uint8 0/1 (H_i, W_i, 1)) is 1;
    images of a size G does not take are filled at the training size (image bicubic, mask
    nearest) and composited back at their own, so known pixels stay bit for bit."""
    params = parallel.to_host(state.sampling_params)
    g_state = parallel.to_host(state.sampling_state)
    channels = image_shape[2]
    inputs = [convert_channels(x, channels) for x in inputs]
    outputs: list[np.ndarray | None] = [None] * len(inputs)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(x.shape[:2], []).append(i)
    for (h, w), indices in by_size.items():
        own = takes_size(task, params, g_state, (h, w, channels), "fill")
        net_h, net_w = (h, w) if own else image_shape[:2]
        log(f"{len(indices)} image(s) of {h}x{w}: " + ("filled at their own size" if own else
            f"resized to {net_h}x{net_w}, filled and resized back"))
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            padded = chunk + chunk[-1:] * (batch - len(chunk))
            x = np.stack([resize(inputs[i], net_h, net_w) for i in padded])
            m = np.stack([np.asarray(Image.fromarray(masks_[i][..., 0]).resize(
                (net_w, net_h), Image.Resampling.NEAREST))[..., None] for i in padded])
            y = image_lib.to_uint8(_fill(task, params, g_state, x, m))
            for i, out in zip(chunk, y):
                outputs[i] = np.where(masks_[i] > 0, resize(out, h, w), inputs[i])
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


def translate_path(workdir: str, input_path: str, out: str, direction: str = "", seed: int = 0,
                   checkpoint: str = "latest", batch: int = 16, log=print, mask: str = "",
                   save_masks: bool = False) -> Path:
    """Translate `input_path` with a checkpoint of `workdir` (see `sample.restore_workdir`) and
    write the result to `out`; direction "": the model's first; `mask` and `save_masks`:
    inpainting only (module docstring). Every check runs before anything is written."""
    from gan_jax.sample import restore_workdir, write_samples

    if direction and direction not in DIRECTIONS:
        raise ValueError(f"--direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    kind, names, inputs = read_input(input_path)
    paths = output_paths(kind, names, out)
    run, state = restore_workdir(workdir, checkpoint)
    require_image_to_image(run)
    direction = direction or run.task.directions[0]
    check_direction(run.task, direction)
    filling = direction == "fill"
    if (mask or save_masks) and not filling:
        raise ValueError(f"--mask and --save_masks are for inpainting workdirs; this one's model "
                         f"({run.config.model.name}) translates {direction}")
    masks_ = None
    if filling:
        masks_ = (draw_masks(run.task, [x.shape[:2] for x in inputs], seed, mask)
                  if mask in ("", "box", "free") else read_masks(mask, names, len(inputs)))
        check_masks(masks_, inputs)
        outputs = fill_images(run.task, state, inputs, masks_, run.image_shape, batch, log)
    else:
        outputs = translate_images(run.task, state, inputs, run.image_shape, seed, direction,
                                   batch, log, progress=kind != "file")
    if kind == "npz" and save_masks:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        with open(paths[0], "wb") as f:
            np.savez(f, images=np.stack(outputs), masks=np.stack(masks_))
    elif kind == "npz":
        write_samples(paths[0], np.stack(outputs))
    else:
        for i, (path, image) in enumerate(zip(paths, outputs)):
            write_png(path, image)
            if save_masks:
                write_png(path.with_name(path.stem + "_mask.png"), masks_[i] * 255)
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
    flags.DEFINE_string("direction", "", "a2b | b2a (CycleGAN only) | fill (inpainting); "
                                         "default: the model's first.")
    flags.DEFINE_string("mask", "", "Inpainting: box | free (drawn from --seed) | an .npz with "
                                    "'masks' | a folder of mask images; default: the run's kinds.")
    flags.DEFINE_boolean("save_masks", False, "Inpainting: also write the masks used.")
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
                                  f.batch, mask=f.mask, save_masks=f.save_masks)
        except (FileNotFoundError, ValueError) as e:
            cli.fail(str(e))
        print(f"wrote translations to {path}")

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
