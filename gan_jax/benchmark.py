"""Speed of the compiled train step of a config: compile time, s/step, img/s, peak memory.

    python -m gan_jax.benchmark [--config=configs/x.py] [--config.train.batch_size=64] \
        [--steps=10] [--torch] [--compute_dtype=float32,bfloat16] [--data=512]

--torch also times the same DCGAN network and step in PyTorch on the same machine (needs torch),
so the two figures come from one run. --compute_dtype times the step once per listed
`train.compute_dtype` (one row each; peak memory is the process's so far). Timings use synthetic
uint8 batches: the input pipeline is measured on its own with --data=N (N JPEGs it writes to a
temporary folder), printed below the train step's img/s.
"""

from __future__ import annotations

import importlib.util
import resource
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from gan_jax import cli, parallel, precision
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import FILES_PER_WORKER, make_source
from gan_jax.data.workers import resolve_workers


def peak_memory_mb() -> dict[str, float]:
    """Peak device memory (when the backend reports it) and peak host RSS, in MiB."""
    out = {"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    return out


def time_train_step(config, steps: int = 10, warmup: int = 2, devices=None) -> dict:
    """Compile time and median steady-state time of `steps` calls of the config's train step."""
    from gan_jax.run import build_run

    run = build_run(config, devices)
    state = run.init_state()
    step_fn = run.train_step()
    train = config.train
    rng = np.random.default_rng(0)
    shape = (train.n_critic, train.batch_size // jax.process_count(), *run.image_shape)
    batch = {"image": rng.integers(0, 256, shape, dtype=np.uint8)}
    if config.model.num_classes:
        batch["label"] = rng.integers(0, config.model.num_classes, shape[:2], dtype=np.int32)
    batch = parallel.put_batch(batch, run.mesh)

    start = time.perf_counter()
    compiled = step_fn.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    s_per_step = float(np.median(times))
    return {"compile_s": compile_s, "s_per_step": s_per_step,
            "img_per_s": train.batch_size * train.n_critic / s_per_step, **peak_memory_mb()}


def time_inception(num_images: int = 1000, resolution: int = 32, batch_size: int = 200) -> dict:
    """img/s of the FID InceptionV3 (random weights: the same compute as the real ones) on uint8
    images of `resolution`, and the seconds of FID/KID/IS/PR on 10,000 x 2048 features."""
    from gan_jax.metrics import scores
    from gan_jax.metrics.inception import InceptionExtractor, random_variables

    extractor = InceptionExtractor.from_variables(random_variables(0), batch_size=batch_size)
    images = np.random.default_rng(0).integers(0, 256, (num_images, resolution, resolution, 3),
                                               dtype=np.uint8)
    start = time.perf_counter()
    extractor(images[:batch_size])
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = extractor(images)
    extract_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(2, 10000, 2048)).astype(np.float32)
    timings = {}
    for name, fn in (("fid", lambda: scores.fid(real, fake)),
                     ("kid", lambda: scores.kid(real, fake)),
                     ("is", lambda: scores.inception_score(out["logits"])),
                     ("pr", lambda: scores.precision_recall(real, fake))):
        start = time.perf_counter()
        fn()
        timings[f"{name}_10k_s"] = time.perf_counter() - start
    return {"compile_s": compile_s, "img_per_s": num_images / extract_s, **timings,
            **peak_memory_mb()}


def write_jpegs(folder: Path, num: int, size: tuple[int, int] = (512, 384), seed: int = 0) -> None:
    """`num` JPEGs (quality 90) of smooth random colour fields plus noise, `size` (W, H), in `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
            size, Image.Resampling.BICUBIC)
        noisy = np.asarray(coarse, np.int16) + rng.integers(-20, 21, (size[1], size[0], 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg",
                                                                       quality=90)


def time_folder_decode(folder: Path, resolution: int, workers: int) -> float:
    """img/s of decoding, resizing and cropping every JPEG of `folder` to RGB `resolution` px in
    `workers` processes (the image cache off)."""
    start = time.perf_counter()
    source = make_source(f"folder:{folder}", resolution, 3, workers=workers, cache="off")
    return source.num_examples / (time.perf_counter() - start)


def time_cached_batches(folder: Path, resolution: int, cache: Path, batch_size: int = 64,
                        steps: int = 20) -> float:
    """img/s of `BatchIterator` batches of `folder` read back from its memory-mapped image cache."""
    make_source(f"folder:{folder}", resolution, 3, cache=str(cache))  # decodes, writes the cache
    source = make_source(f"folder:{folder}", resolution, 3, cache=str(cache))  # memory-mapped
    with BatchIterator(source, 0, 0, batch_size) as batches:
        next(batches)
        start = time.perf_counter()
        for _ in range(steps):
            next(batches)
    return batch_size * steps / (time.perf_counter() - start)


def data_rows(num_images: int, resolutions: tuple[int, ...] = (64, 256)) -> list[str]:
    """Markdown rows: decode img/s of a folder of `num_images` 512x384 JPEGs it writes itself, with
    1, 2 and all cores (at most one process per FILES_PER_WORKER files), and the img/s of batches
    read back from the image cache."""
    counts = sorted({min(n, -(-num_images // FILES_PER_WORKER)) for n in (1, 2, resolve_workers(0))})
    rows = []
    with tempfile.TemporaryDirectory(prefix="gan_jax_data_bench_") as tmp:
        folder = Path(tmp) / "jpegs"
        write_jpegs(folder, num_images)
        time_folder_decode(folder, 8, max(counts))  # start the worker processes' forkserver
        for resolution in resolutions:
            decode = [time_folder_decode(folder, resolution, n) for n in counts]
            cached = time_cached_batches(folder, resolution, Path(tmp) / "cache")
            rows.append(f"| {resolution} | " + " | ".join(f"{r:,.0f}" for r in decode)
                        + f" | {cached:,.0f} |")
    header = " | ".join(f"decode img/s, {n} process{'es' if n > 1 else ''}" for n in counts)
    return [f"| px | {header} | cached batches img/s |", "|---" * (len(counts) + 2) + "|", *rows]


def _row(name: str, r: dict) -> str:
    mem = r.get("device_peak_mb", r.get("host_peak_rss_mb"))
    compile_s = r.get("compile_s")
    return (f"| {name} | {r['s_per_step']:.4f} | {r['img_per_s']:.1f} | "
            f"{'-' if compile_s is None else f'{compile_s:.1f}'} | "
            f"{'-' if mem is None else f'{mem:.0f}'} |")


def main(argv=None) -> None:
    from importlib import resources

    from absl import app, flags
    from absl import logging as absl_logging
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config", str(resources.files("gan_jax.configs") / "digits_dcgan.py"), "Config to time.")
    flags.DEFINE_integer("steps", 10, "Timed steps (median reported).")
    flags.DEFINE_boolean("torch", False, "Also time the same DCGAN in PyTorch (CPU).")
    flags.DEFINE_list("compute_dtype", None, "Time the step with each of these "
                      "train.compute_dtype values, e.g. float32,bfloat16 (default: the config's).")
    flags.DEFINE_integer("inception", 0, "Instead: time InceptionV3 features of this many images "
                         "and the scores on 10k features.")
    flags.DEFINE_integer("data", 0, "Also time the input pipeline on a folder of this many "
                         "512x384 JPEGs it writes (64 and 256 px; 1, 2 and all cores).")

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)
        parallel.use_deterministic_ops()  # as the train command does by default
        f = flags.FLAGS
        config = f.config
        dtypes = f.compute_dtype or [config.train.compute_dtype]
        for dtype in dtypes:
            if dtype not in precision.COMPUTE_DTYPES:
                cli.fail(f"--compute_dtype: {dtype!r} is not one of "
                         f"{', '.join(precision.COMPUTE_DTYPES)}")
        if f.torch:  # before any timing
            if config.model.name != "dcgan" or config.train.n_critic != 1:
                cli.fail("--torch needs a DCGAN config with train.n_critic=1")
            if importlib.util.find_spec("torch") is None:
                cli.fail("--torch needs PyTorch: pip install -e \".[torch]\" (or pip install torch)")
        devices = jax.devices()
        print(f"devices: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), "
              f"jax {jax.__version__}")
        if f.inception:
            r = time_inception(f.inception, config.data.resolution)
            print(" ".join(f"{k}={v:.4g}" for k, v in r.items()), flush=True)
            return
        print(f"model={config.model.name} data={config.data.name} "
              f"res={config.data.resolution} ch={config.data.channels} width={config.model.width} "
              f"batch={config.train.batch_size} n_critic={config.train.n_critic}")
        # Peak memory: the device's when it reports one, else this process's host RSS so far.
        print("| implementation | s/step | img/s | compile s | peak MiB |")
        print("|---|---|---|---|---|")
        for dtype in dtypes:
            config.train.compute_dtype = dtype
            print(_row(f"gan_jax ({jax.default_backend()}, {dtype})",
                       time_train_step(config, f.steps)), flush=True)
        if f.data:
            print(f"\ninput pipeline: {f.data} JPEGs of 512x384 px decoded to RGB; "
                  f"{resolve_workers(0)} cores")
            print("\n".join(data_rows(f.data)), flush=True)
        if f.torch:
            import torch

            from gan_jax.torch_reference import dcgan_step_timing

            device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
            r = dcgan_step_timing(config.data.resolution, config.data.channels, config.model.width,
                                  config.model.latent_dim, config.train.batch_size, steps=f.steps,
                                  device=device)
            if device == "cuda":
                r["device_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            print(_row(f"PyTorch {r['torch_version']} ({device}, {r['threads']} threads)", r))

    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
