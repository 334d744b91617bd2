"""Synthetic data sets: a checkpoint's samples written as an image folder, an .npz or a prepared
TFDS data set, with a manifest saying where they came from.

    python -m gan_jax.export --workdir=DIR --out=PATH (--num=N | --per_class=K) [--seed=S]
        [--truncation=X] [--checkpoint=latest|best|STEP] [--format=folder|npz|tfds]
        [--name=generated] [--chunk=1024] [--batch=64]

Example i (0 <= i < N) is a pure function of (checkpoint, seed, i, --batch): its key is
fold_in(key(seed), i) (as `sample`), its label i // K with --per_class=K, else drawn from its key.
The images are computed in blocks of --batch consecutive indices, block b on a device of its own
(the blocks spread over the local devices), so image i is always row i mod batch of the same
block: the chunking and the device count do not change a byte.

Layout of PATH (`folder`): `<class>/<index>.png` (conditional; class and index zero-padded, so
sorted names are numeric order: `folder:PATH` reads the pixels class by class, labels are the
folder names, as torchvision's ImageFolder infers them) or `<index>.png`; `npz`: `data.npz`
with `images` uint8 (N, H, W, C) and `labels` int32 (N,) (conditional); `tfds`: PATH is a TFDS
data_dir holding the data set `--name` (split `train`, features `image` and `label`), built with
TFDS's `GeneratorBasedBuilder` as array_record (`store_as_tfds_dataset` would import
tensorflow). Each holds `manifest.json`.

Resumable: chunks of --chunk examples are written atomically (a temporary name, then a rename)
and each finished chunk is recorded in PATH/.parts/; a rerun after a kill skips the finished
chunks, and the result is byte-identical to an unbroken export. `npz` and `tfds` keep their chunks
in .parts/ and assemble them at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

import gan_jax
from gan_jax import config as config_lib
from gan_jax import images, parallel, sample

FORMATS = ("folder", "npz", "tfds")
MANIFEST = "manifest.json"
PARTS = ".parts"
NPZ_FILE = "data.npz"
TFDS_VERSION = "1.0.0"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip entry times: the same arrays give the same bytes


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What an export holds: `num` examples (`per_class` per class when > 0) of seed `seed`."""

    num: int
    seed: int
    per_class: int = 0
    truncation: float | None = None
    batch: int = 64  # examples per device call: part of what an image's bytes depend on
    format: str = "folder"
    name: str = "generated"  # the TFDS data set name


def example_labels(task, spec: ExportSpec, start: int, stop: int) -> np.ndarray | None:
    """(stop - start,) int32 labels of examples start..stop-1 (None: unconditional): i // per_class
    with `per_class` (capped at the last class for padding past `num`), else drawn from each key."""
    if not task.num_classes:
        return None
    if spec.per_class:
        return np.minimum(np.arange(start, stop) // spec.per_class, task.num_classes - 1
                          ).astype(np.int32)
    keys = sample.latent_keys(spec.seed, start, stop - start)
    return np.asarray(jax.jit(task.labels)(keys), np.int32)


def block_sampler(task, state, devices, truncation: float | None) -> Callable:
    """fn(keys, labels) -> uint8 images: the state's sampling params (EMA when present) on
    `devices`, keys and labels split evenly over them (one block per device)."""
    mesh = parallel.make_mesh(devices)
    spec = P(parallel.DATA_AXIS)

    def per_device(params, g_state, step, keys, labels):
        return task.sample(params, g_state, keys, step, labels=labels, truncation=truncation)

    fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(), P(), spec, spec),
                               out_specs=spec))
    replicated, split = parallel.replicated(mesh), NamedSharding(mesh, spec)
    params, g_state, step = jax.device_put(
        parallel.to_host((state.sampling_params, state.sampling_state, state.step)), replicated)
    return lambda keys, labels: images.to_uint8(fn(
        params, g_state, step, jax.device_put(keys, split),
        None if labels is None else jax.device_put(labels, split)))


def generate(sampler, task, spec: ExportSpec, start: int, stop: int, num_devices: int
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8, labels or None) of examples start..stop-1, computed in blocks of
    `spec.batch` indices aligned to multiples of it, `num_devices` blocks per call."""
    first = start // spec.batch * spec.batch
    window = spec.batch * num_devices
    out = []
    for lo in range(first, stop, window):
        keys = sample.latent_keys(spec.seed, lo, window)
        out.append(sampler(keys, example_labels(task, spec, lo, lo + window)))
    labels = example_labels(task, spec, start, stop)
    return np.concatenate(out)[start - first:stop - first], labels


# ---------------------------------------------------------------------------------------------
# Files.


def _write_atomic(path: Path, data: bytes) -> None:
    """`data` at `path`, written under a temporary name and renamed (never half written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, C) uint8 -> PNG bytes (grayscale for C = 1); the same image gives the same bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def folder_path(out: Path, index: int, label: int | None, num: int, num_classes: int) -> Path:
    """PATH/<class>/<index>.png (conditional) or PATH/<index>.png, zero-padded so that sorted
    names are numeric order."""
    name = f"{index:0{len(str(num - 1))}d}.png"
    if label is None:
        return out / name
    return out / f"{label:0{len(str(num_classes - 1))}d}" / name


def chunk_ranges(num: int, chunk: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering 0..num-1 in steps of `chunk`."""
    return [(start, min(start + chunk, num)) for start in range(0, num, chunk)]


def _part(out: Path, start: int, stop: int, suffix: str) -> Path:
    return out / PARTS / f"{start:010d}-{stop:010d}.{suffix}"


def chunk_done(out: Path, spec: ExportSpec, start: int, stop: int) -> bool:
    """Whether chunk start..stop-1 was finished (its record in PATH/.parts/ exists)."""
    return _part(out, start, stop, "done" if spec.format == "folder" else "npz").is_file()


def write_chunk(out: Path, spec: ExportSpec, num_classes: int, start: int, images_: np.ndarray,
                labels: np.ndarray | None) -> None:
    """Write examples start.. of a chunk, each file atomically, then record the chunk finished:
    `folder`: its PNGs, then an empty PATH/.parts/<start>-<stop>.done; `npz`/`tfds`: the chunk
    as PATH/.parts/<start>-<stop>.npz (the record itself)."""
    stop = start + len(images_)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    if spec.format != "folder":
        buffer = io.BytesIO()
        arrays = {"images": _whole(images_)}
        if labels is not None:
            arrays["labels"] = _whole(labels)
        write_npz(buffer, arrays)
        _write_atomic(_part(out, start, stop, "npz"), buffer.getvalue())
        return
    for offset, image in enumerate(images_):
        label = None if labels is None else int(labels[offset])
        path = folder_path(out, start + offset, label, spec.num, num_classes)
        path.parent.mkdir(exist_ok=True)
        _write_atomic(path, png_bytes(image))
    _write_atomic(_part(out, start, stop, "done"), b"")


def write_npz(file, arrays: dict[str, tuple[tuple[int, ...], np.dtype, Iterable[np.ndarray]]]
              ) -> None:
    """An .npz (stored, not compressed) holding, for each key, the array of that shape and dtype
    whose rows the pieces give in order (one piece in memory at a time), with fixed entry times."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, (shape, dtype, pieces) in arrays.items():
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                      "fortran_order": False, "shape": tuple(shape)}
            with archive.open(zipfile.ZipInfo(f"{key}.npy", ZIP_DATE), "w",
                              force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                for piece in pieces:
                    f.write(np.ascontiguousarray(piece, dtype).tobytes())


def _whole(array: np.ndarray) -> tuple[tuple[int, ...], np.dtype, list[np.ndarray]]:
    return array.shape, array.dtype, [array]


def read_parts(out: Path, ranges: list[tuple[int, int]]) -> Iterator[dict[str, np.ndarray]]:
    """The chunks' {'images', 'labels'?} in order, one at a time."""
    for start, stop in ranges:
        with np.load(_part(out, start, stop, "npz")) as part:
            yield dict(part)


def assemble_npz(out: Path, spec: ExportSpec, image_shape: tuple[int, int, int],
                 num_classes: int, ranges: list[tuple[int, int]]) -> None:
    """PATH/data.npz from the chunks in PATH/.parts/ (read one at a time), written atomically."""
    arrays = {"images": ((spec.num, *image_shape), np.uint8,
                         (part["images"] for part in read_parts(out, ranges)))}
    if num_classes:
        arrays["labels"] = ((spec.num,), np.int32,
                            (part["labels"] for part in read_parts(out, ranges)))
    tmp = out / f".{NPZ_FILE}.tmp"
    with open(tmp, "wb") as f:
        write_npz(f, arrays)
    os.replace(tmp, out / NPZ_FILE)


def build_tfds(out: Path, spec: ExportSpec, image_shape: tuple[int, int, int], num_classes: int,
               ranges: list[tuple[int, int]]) -> None:
    """The TFDS data set `spec.name` (split 'train', PNG-encoded `image`, `label` when
    conditional, examples in index order) in data_dir PATH, from the chunks in PATH/.parts/."""
    import tensorflow_datasets as tfds

    features = {"image": tfds.features.Image(shape=image_shape)}
    if num_classes:
        features["label"] = tfds.features.ClassLabel(num_classes=num_classes)

    def examples():
        index = 0
        for part in read_parts(out, ranges):
            for offset, image in enumerate(part["images"]):
                example = {"image": png_bytes(image)}  # encoded here: tfds would need tensorflow
                if num_classes:
                    example["label"] = int(part["labels"][offset])
                yield index, example
                index += 1

    class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = spec.name
        VERSION = tfds.core.Version(TFDS_VERSION)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features),
                description=f"Samples of a gan_jax generator; see {out / MANIFEST}.",
                disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            return examples()

    shutil.rmtree(out / spec.name, ignore_errors=True)  # what a killed build left
    Builder(data_dir=str(out), file_format="array_record").download_and_prepare()
    for empty in ("downloads/extracted", "downloads"):  # made by tfds, unused here
        if (out / empty).is_dir() and not any((out / empty).iterdir()):
            (out / empty).rmdir()


# ---------------------------------------------------------------------------------------------
# The manifest: what the export is, checked before a rerun touches PATH.


def params_sha256(state) -> str:
    """sha256 of the sampling params and collections (EMA when present): the generator's
    identity."""
    import flax.serialization

    tree = parallel.to_host((state.sampling_params, state.sampling_state))
    return hashlib.sha256(flax.serialization.to_bytes(tree)).hexdigest()


def identity(run, state, spec: ExportSpec, checkpoint: str) -> dict:
    """The manifest's fields that define the export's bytes (a rerun must match them)."""
    plain = config_lib.to_plain(run.config)
    return {"format": spec.format, "num": spec.num, "per_class": spec.per_class,
            "seed": spec.seed, "truncation": spec.truncation, "batch": spec.batch,
            **({"name": spec.name} if spec.format == "tfds" else {}),
            "checkpoint": checkpoint, "step": int(parallel.to_host(state.step)),
            "config_sha256": hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest(),
            "params_sha256": params_sha256(state), "image_shape": list(run.image_shape),
            "num_classes": run.task.num_classes}


def claim(out: Path, wanted: dict) -> dict | None:
    """The manifest already in `out` when it describes the export `wanted` (None: `out` is new or
    empty); ValueError (one line) when `out` holds anything else."""
    manifest = out / MANIFEST
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        differ = [k for k in wanted if found.get(k) != wanted[k]]
        if differ:
            raise ValueError(f"{out} holds a different export ({', '.join(differ)} differ"
                             f"{'s' if len(differ) == 1 else ''}); choose another --out or "
                             "delete it")
        return found
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and holds no gan_jax export ({MANIFEST}); choose another "
                         "--out or delete it")
    return None


def class_counts(task, spec: ExportSpec) -> dict[str, int]:
    """{class: count} of the export's labels ({'all': num} when unconditional)."""
    if not task.num_classes:
        return {"all": spec.num}
    counts = np.zeros(task.num_classes, int)
    for start, stop in chunk_ranges(spec.num, 65536):
        counts += np.bincount(example_labels(task, spec, start, stop), minlength=task.num_classes)
    return {str(c): int(n) for c, n in enumerate(counts)}


def _write_manifest(out: Path, manifest: dict) -> None:
    _write_atomic(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


# ---------------------------------------------------------------------------------------------
# The command.


def check_spec(task, spec: ExportSpec, chunk: int) -> None:
    """ValueError (one line) for numbers the export cannot use."""
    if spec.format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {spec.format!r}")
    if spec.per_class and not task.num_classes:
        raise ValueError("--per_class needs a class-conditional model (model.num_classes > 0)")
    if spec.num < 1 and not spec.per_class:
        raise ValueError("give --num=N (N >= 1) or --per_class=K (class-conditional models)")
    if spec.truncation is not None and spec.truncation <= 0:
        raise ValueError(f"--truncation must be > 0, got {spec.truncation}")
    if chunk < 1 or spec.batch < 1:
        raise ValueError(f"--chunk and --batch must be >= 1, got {chunk} and {spec.batch}")


def export(workdir: str, out: str | Path, spec: ExportSpec, checkpoint: str = "latest",
           chunk: int = 1024, devices=None, progress: bool = True, log=print) -> dict:
    """Write (or finish) the export `spec` of a checkpoint of `workdir` to `out` (see the module
    docstring) on `devices` (default: the local devices); returns its manifest."""
    from tqdm import tqdm

    run, state = sample.restore_workdir(workdir, checkpoint)
    task = run.task
    if task.image_to_image:
        raise ValueError(f"this workdir's model ({run.config.model.name}) translates images; "
                         f"export a folder of translations with python -m gan_jax.translate "
                         f"--workdir={workdir} --input=... --out=...")
    check_spec(task, spec, chunk)
    if spec.per_class:
        spec = dataclasses.replace(spec, num=spec.per_class * task.num_classes)
    out = Path(out)
    wanted = identity(run, state, spec, checkpoint)
    found = claim(out, wanted)
    if found is not None and found.get("complete"):
        log(f"{out} already holds this export")
        return found
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, {**wanted, "complete": False})

    devices = list(devices or jax.local_devices())
    ranges = chunk_ranges(spec.num, chunk)
    todo = [r for r in ranges if not chunk_done(out, spec, *r)]
    sampler = block_sampler(task, state, devices, spec.truncation)
    with tqdm(total=spec.num, initial=spec.num - sum(b - a for a, b in todo), unit="img",
              desc=f"export {spec.format}", disable=not progress) as bar:
        for start, stop in todo:
            images_, labels = generate(sampler, task, spec, start, stop, len(devices))
            write_chunk(out, spec, task.num_classes, start, images_, labels)
            bar.update(stop - start)
    if spec.format == "npz":
        assemble_npz(out, spec, run.image_shape, task.num_classes, ranges)
    elif spec.format == "tfds":
        build_tfds(out, spec, run.image_shape, task.num_classes, ranges)
    manifest = {**wanted, "complete": True, "counts_per_class": class_counts(task, spec),
                "workdir": str(Path(workdir).resolve()), "gan_jax_version": gan_jax.__version__}
    _write_manifest(out, manifest)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return manifest


def main(argv=None) -> None:
    from absl import app, flags
    from absl import logging as absl_logging

    from gan_jax import cli

    cli.define_workdir("Training directory holding checkpoints/.")
    flags.DEFINE_string("out", None, "Output folder (for tfds: the data_dir).", required=True)
    flags.DEFINE_integer("num", 0, "Number of examples (labels drawn from each example's key).",
                         lower_bound=0)
    flags.DEFINE_integer("per_class", 0, "Examples per class instead of --num (conditional "
                         "models): example i has class i // per_class.", lower_bound=0)
    flags.DEFINE_integer("seed", 0, "Sampling seed: the same seed gives the same bytes.",
                         lower_bound=0, upper_bound=2**32 - 1)
    flags.DEFINE_float("truncation", None, "As sample's --truncation. Default: none.")
    flags.DEFINE_string("checkpoint", "latest", "latest | best | a step number.")
    flags.DEFINE_enum("format", "folder", list(FORMATS), "folder | npz | tfds.")
    flags.DEFINE_string("name", "generated", "The TFDS data set's name (--format=tfds).")
    flags.DEFINE_integer("chunk", 1024, "Examples per chunk (the unit of resuming).",
                         lower_bound=1)
    flags.DEFINE_integer("batch", 64, "Examples per device call (changes the bytes).",
                         lower_bound=1)

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)
        f = flags.FLAGS
        if bool(f.num) == bool(f.per_class):
            cli.fail("give exactly one of --num=N and --per_class=K")
        spec = ExportSpec(f.num, f.seed, f.per_class, f.truncation, f.batch, f.format, f.name)
        try:
            manifest = export(f.workdir, f.out, spec, f.checkpoint, f.chunk)
        except (FileNotFoundError, ValueError) as e:
            cli.fail(str(e))
        print(f"wrote {manifest['num']} examples ({manifest['format']}) to {f.out}")

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
