"""The training loop, and the `train` command.

    python -m gan_jax.train --workdir=DIR [--config=configs/x.py] [--config.train.num_steps=500]

Without --config it trains configs/digits_mlp.py. Rerunning on a workdir resumes from its newest
checkpoint; raising train.num_steps continues the run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

from gan_jax import cli

if __name__ == "__main__":  # first: a signal during the imports below (seconds) exits cleanly
    cli.exit_on_signal()

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from gan_jax import config as config_lib
from gan_jax import distributed, images, parallel, sample
from gan_jax.checkpoint import (Checkpoints, Layout, layout_changes, remove_unfinished_saves,
                                state_layout)
from gan_jax.data.pipeline import BatchIterator, example_batch
from gan_jax.data.sources import DataError
from gan_jax.evaluate import (Evaluator, TranslationEvaluator, check_best_metric, is_better,
                              make_evaluator)
from gan_jax.metrics.scores import MetricError
from gan_jax.metric_writers import MetricWriter, drop_steps_after
from gan_jax.run import Run, build_run
from gan_jax.state import GANState
from gan_jax.workdir import WorkdirBusyError, exclusive, os_error_message

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections", "numpy",
            "tensorflow-datasets")


class PreemptionGuard:
    """SIGTERM/SIGINT make `should_stop` True: the loop saves and exits cleanly; a second signal
    exits now.

    In multi-process runs SIGTERM is left to JAX's preemption service, which tells every process:
    `should_stop(step)` turns True on all of them at the same step
    (`multihost_utils.reached_preemption_sync_point`), so they save one checkpoint together even
    when only one process was signalled. It must then be called at every step. That service
    listens to SIGTERM only, so SIGINT is forwarded to it as a SIGTERM to this process.
    """

    def __init__(self, multi_process: bool = False):
        self.requested = False
        self.multi_process = multi_process
        self._signalled = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self._signalled:
            raise SystemExit(128 + signum)
        self._signalled = True
        if self.multi_process:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            self.requested = True

    def should_stop(self, step: int) -> bool:
        if self.multi_process and not self.requested:
            from jax.experimental import multihost_utils

            self.requested = multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def __enter__(self):
        signals = (signal.SIGINT,) if self.multi_process else (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# Variables that cap the instruction set of XLA:CPU's kernel libraries, and with XLA_FLAGS all
# those that choose its kernels (so its float results).
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
KERNEL_VARIABLES = ("XLA_FLAGS", *ISA_CAP_VARIABLES)


def _cpuinfo_field(name: str, cpuinfo: str | None) -> str | None:
    """The value of the first `name` line of /proc/cpuinfo (or of `cpuinfo`); None if absent."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                 if line.split(":", 1)[0].strip() == name), None)


def host_isa(cpuinfo: str | None = None) -> str:
    """The widest x86 vector instruction set of this host's CPU: 'avx512', 'avx2', 'avx' or
    'other' (not x86, or no /proc/cpuinfo). XLA:CPU's kernel libraries (oneDNN for dots,
    YNNPACK for some fusions) pick their kernels by it at run time, so CPU results are bitwise
    repeatable between hosts of the same instruction set and software, not across them
    (README, "Reproducibility")."""
    flags = (_cpuinfo_field("flags", cpuinfo) or "").split()
    return next((isa for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"))
                 if flag in flags), "other")


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """/proc/cpuinfo's first 'model name' (None where there is none)."""
    return _cpuinfo_field("model name", cpuinfo)


def environment() -> dict:
    """Library versions, devices, the host CPU (model, vector ISA, core count) and the variables
    that choose XLA:CPU's kernels, of this process: written to WORKDIR/environment.json, so a
    result names the machine type it is bitwise repeatable on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "packages": versions,
            "process_count": jax.process_count(), "process_index": jax.process_index(),
            "devices": [str(d) for d in jax.devices()],
            "cpu": {"model": cpu_model(), "isa": host_isa(), "cores": os.cpu_count(),
                    "machine": platform.machine()},
            "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ}}


def restore_or_init(run: Run, checkpoints: Checkpoints, plain_config: dict) -> GANState:
    """The newest readable checkpoint's state (its config must match), else a new state.

    An unreadable checkpoint (truncated, missing or garbled files) is moved aside to
    `<step>.unreadable` with a warning naming it, and the previous one is tried. A readable one
    whose state has other shapes than this config builds is refused (ConfigError naming them),
    except for turning the EMA generator on or off, which is carried over (see `_carry_over`).
    """
    while (step := checkpoints.latest_step()) is not None:
        try:
            saved_config = checkpoints.restore_config(step)
            saved_layout = checkpoints.layout(step)
        except Exception as e:  # noqa: BLE001 (any read failure means "unreadable")
            _set_aside(checkpoints, step, e)
            continue
        changes = config_lib.math_changes(saved_config, plain_config)
        if changes and not run.config.allow_config_change:
            raise config_lib.ConfigError(
                f"the checkpoints in {checkpoints.directory} were made with a different config "
                f"({'; '.join(changes)}); use a new --workdir, or pass "
                f"--config.allow_config_change=True to continue with the new values")
        target, convert = _carry_over(run.abstract_state(), saved_layout, step, checkpoints)
        try:
            state, _ = checkpoints.restore(target, parallel.replicated(run.mesh), step)
        except Exception as e:  # noqa: BLE001
            _set_aside(checkpoints, step, e)
            continue
        return convert(state)
    return run.init_state()


_EMA_SOURCE = {"ema_params": "g_params", "ema_state": "g_state"}  # EMA field -> what it averages


def _carry_over(abstract: GANState, saved: Layout, step: int, checkpoints: Checkpoints):
    """(restore target, fn converting the restored state to `abstract`'s structure).

    ConfigError naming the differences unless there are none, or they are only the EMA generator
    (params and collections): dropped when it was turned off; when it was turned on, or a
    checkpoint from before the EMA kept its own collections lacks them, started from the restored
    generator's.
    """
    changes = layout_changes(saved, state_layout(abstract))
    if not changes:
        return abstract, lambda state: state
    dropped = [f for f in _EMA_SOURCE if f"{f}: present -> absent" in changes]
    added = [f for f in _EMA_SOURCE if f"{f}: absent -> present" in changes]
    if len(dropped) + len(added) == len(changes):
        if dropped:
            warnings.warn(f"ema.decay=0: dropping the EMA generator of checkpoint step {step}",
                          RuntimeWarning, stacklevel=3)
        if added:
            warnings.warn(f"starting {' and '.join(added)} from the generator of checkpoint step "
                          f"{step} (ema.decay>0, or a checkpoint made before the EMA generator "
                          f"kept its own statistics)", RuntimeWarning, stacklevel=3)
        target = abstract.replace(**{f: getattr(abstract, _EMA_SOURCE[f]) for f in dropped},
                                  **{f: None for f in added})
        return target, lambda s: s.replace(
            **{f: None for f in dropped},
            **{f: jax.tree.map(jnp.copy, getattr(s, _EMA_SOURCE[f])) for f in added})
    more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
    raise config_lib.ConfigError(
        f"checkpoint step {step} in {checkpoints.directory} holds a state of another structure than "
        f"this config builds: {'; '.join(changes[:3])}{more}; undo the change or use a new --workdir")


def _set_aside(checkpoints: Checkpoints, step: int, error: Exception) -> None:
    reason = (str(error).strip().splitlines() or [""])[0][:200]
    moved = checkpoints.quarantine(step)
    warnings.warn(f"checkpoint step {step} is unreadable ({type(error).__name__}: {reason}); "
                  f"moved it to {moved} and falling back to the previous checkpoint",
                  RuntimeWarning, stacklevel=2)


@jax.jit
def _add(total: dict | None, metrics: dict, skipped_before: jax.Array) -> dict:
    """total (None: zeros) + one step's metrics, per key, and total['applied'] + 1; a step that
    was skipped (metrics['skipped'] > skipped_before) leaves total as it is (on device: the loop
    sums each step's metrics without waiting)."""
    if total is None:
        total = jax.tree.map(jnp.zeros_like, {**metrics, "applied": metrics["skipped"]})
    applied = metrics["skipped"] == skipped_before
    step = {**metrics, "applied": jnp.ones((), jnp.float32)}
    return jax.tree.map(lambda t, m: jnp.where(applied, t + m, t), total, step)


def _check_finite(step: int, scalars: dict, since: tuple[int, int], train: ml_collections.ConfigDict,
                  checkpoints: Checkpoints) -> None:
    """Stop (FloatingPointError) on a non-finite loss or param, or warn about skipped steps.

    `scalars` are the means of the metrics of every applied step since the last log (a
    non-finite value in any step makes its mean non-finite; params_finite is 1 only when it was 1
    in every step);
    `since` is (step, skipped count) at the previous check.
    """
    last_good = f"last good checkpoint: step {checkpoints.latest_step()} (left untouched)"
    skipped = int(scalars["skipped"])
    if train.on_nonfinite == "skip":
        if skipped > since[1]:
            warnings.warn(f"{skipped - since[1]} of steps {since[0] + 1}..{step} had a non-finite "
                          f"loss or param and were skipped ({skipped} in all)",
                          RuntimeWarning, stacklevel=2)
        if skipped > train.max_skipped_steps:
            raise FloatingPointError(
                f"{skipped} steps were skipped for non-finite losses or params, more than "
                f"train.max_skipped_steps={train.max_skipped_steps}; {last_good}")
        return
    bad = [f"{k}={v}" for k, v in scalars.items() if not math.isfinite(v)]
    if scalars["params_finite"] != 1.0:
        bad.append("updated params")
    if bad:
        raise FloatingPointError(
            f"non-finite values at step {step}: {', '.join(bad)}; {last_good}; "
            f"--config.train.on_nonfinite=skip skips such steps")


def _write_grid(task, state, num: int, seed: int, path: Path) -> None:
    """`num` samples from fixed latents; for a conditional task one row per class instead."""
    if task.num_classes:
        per_class = max(1, num // task.num_classes)
        sample.write_samples(path, sample.class_grid(task, state, per_class, seed), per_class)
    else:
        sample.write_samples(path, sample.generate_images(task, state, num, seed))


GRID_COLUMNS = 8


def _grid_examples(source, num: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (A, B) images of the grid: the first `num` pairs of a paired source; the first `num`
    images of each domain of an unpaired one; the first `num` images, twice, of an image source
    (inpainting)."""
    if not hasattr(source, "paired"):
        images_ = source.get(np.arange(min(num, source.num_examples)))["image"]
        return images_, images_
    if source.paired:
        pairs = source.get(np.arange(min(num, source.num_examples)))
        return pairs["a"], pairs["b"]
    count = min(num, source.a.num_examples, source.b.num_examples)
    return tuple(domain.get(np.arange(count))["image"] for domain in (source.a, source.b))


def translation_grid_writer(run: Run, num: int, seed: int):
    """write(state, path) of the image-to-image sample grid, from the first `num` examples of
    data.test_split (GRID_COLUMNS per band); G's randomness from the keys of
    `sample.latent_keys(seed)`. Paired data: bands of three rows, inputs A, outputs G(A), targets
    B; unpaired data (one row pair per direction): A, G_ab(A), B, G_ba(B); inpainting: masked
    inputs, fills, originals (masks from the same keys). Reads the split now."""
    a, b = _grid_examples(run.data_source(run.config.data.test_split), num)
    keys = sample.latent_keys(seed, 0, len(a))
    translate = jax.jit(run.task.translate, static_argnames="direction")
    inputs = {"a2b": images.to_float(a), "b2a": images.to_float(b), "fill": images.to_float(a)}
    columns = min(GRID_COLUMNS, len(a))
    if "fill" in run.task.directions:  # inpainting: G's inputs, the keys' masks blanked
        shown = images.to_uint8(jax.jit(run.task.masked_inputs)(inputs["fill"], keys))

    def write(state: GANState, path: Path) -> None:
        out = {d: images.to_uint8(translate(state.sampling_params, state.sampling_state,
                                            inputs[d], keys, direction=d))
               for d in run.task.directions}
        if "fill" in out:
            rows = [shown, out["fill"], b]
        else:
            rows = [a, out["a2b"], b] if "b2a" not in out else [a, out["a2b"], b, out["b2a"]]
        bands = []
        for start in range(0, len(a), columns):
            band = [x[start:start + columns] for x in rows]
            pad = ((0, columns - len(band[0])), (0, 0), (0, 0), (0, 0))
            bands += [np.pad(x, pad) for x in band]
        sample.write_samples(path, np.concatenate(bands), columns)

    return write


def check_labels(config: ml_collections.ConfigDict, source) -> None:
    """DataError unless a class-conditional config's data has labels of its classes."""
    want = config.model.num_classes
    if not want:
        return
    if source.num_classes is None:
        raise DataError(f"config.model.num_classes={want} needs labelled data, but {source.name} has "
                        f"no labels; use a labelled data set or set model.num_classes=0")
    if source.num_classes != want:
        raise DataError(f"config.model.num_classes={want} but {source.name} has "
                        f"{source.num_classes} classes; set model.num_classes={source.num_classes}")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path,
                       devices=None, progress: bool = True) -> GANState:
    """Train (or resume) the run `config` describes in `workdir`; returns the final state."""
    workdir = Path(workdir)
    run = build_run(config, devices)  # ConfigError before anything is compiled
    source = run.data_source()  # DataError before compiling
    check_labels(config, source)
    is_main = jax.process_index() == 0
    log = (lambda message: tqdm.tqdm.write(message, file=sys.stderr)) if is_main else (lambda m: None)
    if note := config_lib.ema_start_note(config):
        log(note)
    write_translations = (translation_grid_writer(run, config.sample.num, config.train.seed)
                          if run.task.image_to_image and config.train.sample_every_steps else None)
    if config.eval.every_steps and run.task.image_to_image:  # before any extractor is built
        check_best_metric(config, run.task.directions, source.paired)
    # A missing weights file or unlabelled data set fails here, before compiling.
    evaluator = make_evaluator(run, source, log) if config.eval.every_steps else None
    # Compiled before anything is written: ConfigError if the batch cannot fit in memory.
    step_fn = run.checked_train_step(example_batch(source))
    workdir.mkdir(parents=True, exist_ok=True)
    with exclusive(workdir) if is_main else contextlib.nullcontext():
        if is_main:
            record_data(workdir, source)
        return _train(run, step_fn, source, workdir, progress, evaluator, write_translations)


def record_data(workdir: Path, source) -> None:
    """Write WORKDIR/data.json (the data set's name and content hash); warn in one line when the
    one written by an earlier run of this workdir differs (a folder's images changed)."""
    path = workdir / "data.json"
    data = {"name": source.name, "sha256": source.fingerprint()}
    if path.exists():
        old = json.loads(path.read_text())
        if old != data and data["sha256"] is not None:
            warnings.warn(f"the data set {source.name} differs from the one this workdir was "
                          f"trained on (content sha256 {str(old.get('sha256'))[:12]} -> "
                          f"{data['sha256'][:12]}); training goes on with the new data",
                          RuntimeWarning, stacklevel=2)
    path.write_text(json.dumps(data, indent=2) + "\n")


class _Best:
    """WORKDIR/best/: the checkpoint with the best `eval.best_metric` so far, and its scores."""

    def __init__(self, workdir: Path, metric: str):
        self.metric = metric
        self.checkpoints = Checkpoints(workdir, keep=1, subdir="best")
        self.step = self.checkpoints.latest_step()
        self.scores = (None if self.step is None
                       else self.checkpoints.restore_metrics(self.step)["scores"])

    @property
    def value(self) -> float | None:
        return None if self.scores is None else self.scores[self.metric]

    def offer(self, state: GANState, plain_config: dict, result: dict) -> bool:
        if not is_better(self.metric, result["scores"][self.metric], self.value):
            return False
        self.checkpoints.save(state, plain_config, result)
        self.step, self.scores = result["step"], result["scores"]
        return True


def _evaluate(evaluator: Evaluator | TranslationEvaluator, run: Run, state: GANState,
              workdir: Path, writer: MetricWriter,
              best: _Best | None, plain_config: dict, is_main: bool) -> None:
    result = evaluator(run.task, state)
    step = result["step"]
    writer.write(step, {f"eval/{k}": v for k, v in result["scores"].items()})
    if is_main:
        tqdm.tqdm.write(f"step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in
                                                    result["scores"].items()), file=sys.stderr)
        (workdir / "eval").mkdir(exist_ok=True)
        (workdir / "eval" / f"step_{step:07d}.json").write_text(json.dumps(result, indent=2) + "\n")
    if best is not None:
        best.offer(state, plain_config, result)


def _train(run: Run, step_fn, source, workdir: Path, progress: bool,
           evaluator: Evaluator | TranslationEvaluator | None = None, write_translations=None
           ) -> GANState:
    config = run.config
    is_main = jax.process_index() == 0
    plain_config = config_lib.to_plain(config)
    if is_main:
        remove_unfinished_saves(workdir)
    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep)
    state = restore_or_init(run, checkpoints, plain_config)
    start = int(parallel.to_host(state.step))
    if is_main:
        drop_steps_after(workdir / "metrics.jsonl", start)  # a crashed run's replayed steps
        (workdir / "config.json").write_text(json.dumps(plain_config, indent=2))
        (workdir / "environment.json").write_text(json.dumps(environment(), indent=2))
        (workdir / "samples").mkdir(exist_ok=True)

    train = config.train
    writer = MetricWriter(workdir, enabled=is_main, start=start)
    batches = BatchIterator(source, train.seed, start, train.batch_size, train.n_critic,
                            jax.process_index(), jax.process_count(), workers=config.data.workers)
    bar = tqdm.tqdm(total=train.num_steps, initial=start, disable=not (progress and is_main),
                    unit="step", dynamic_ncols=True)
    images_per_step = train.batch_size * train.n_critic
    began = last_time = time.perf_counter()
    last_step = start
    checked = (start, int(parallel.to_host(state.skipped)))  # (step, skipped) at the last check
    sums = None  # per-step metrics of the applied steps since the last log, summed on device
    skipped_before = np.float32(checked[1])  # the skip count before this step
    eval_every = config.eval.every_steps if evaluator is not None else 0
    best = _Best(workdir, config.eval.best_metric) if eval_every and config.eval.best_metric else None
    try:
        with PreemptionGuard(multi_process=jax.process_count() > 1) as guard:
            for step in range(start, train.num_steps):
                _, batch = next(batches)
                state, metrics = step_fn(state, parallel.put_batch(batch, run.mesh))
                sums, skipped_before = _add(sums, metrics, skipped_before), metrics["skipped"]
                done = step + 1
                bar.update(1)
                stop = guard.should_stop(done)
                checkpoint_now = done % config.checkpoint.every_steps == 0 or done == train.num_steps
                log_now = done % train.log_every_steps == 0 or checkpoint_now or stop
                sample_now = bool(train.sample_every_steps) and done % train.sample_every_steps == 0
                eval_now = bool(eval_every) and (done % eval_every == 0 or done == train.num_steps)
                if log_now or sample_now or eval_now:  # nothing non-finite is written or evaluated
                    totals = parallel.to_host(sums)
                    applied = float(totals.pop("applied"))  # 0: every step was skipped
                    scalars = {k: float(v) / applied if applied else math.nan
                               for k, v in totals.items()}
                    scalars["skipped"] = float(parallel.to_host(state.skipped))  # a count, not a mean
                    _check_finite(done, scalars, checked, train, checkpoints)
                    checked = (done, int(scalars["skipped"]))
                if log_now:
                    now = time.perf_counter()
                    scalars["img_per_s"] = (done - last_step) * images_per_step / (now - last_time)
                    last_time, last_step = now, done
                    writer.write(done, scalars)
                    bar.set_postfix({k: f"{scalars[k]:.3g}" for k in ("d_loss", "g_loss", "img_per_s")})
                    sums = None
                if is_main and sample_now:
                    path = workdir / "samples" / f"step_{done:07d}.png"
                    if write_translations is None:
                        _write_grid(run.task, state, config.sample.num, train.seed, path)
                    else:
                        write_translations(state, path)
                    writer.write_image(done, "samples", path)
                if eval_now:
                    _evaluate(evaluator, run, state, workdir, writer, best, plain_config, is_main)
                if checkpoint_now or stop:
                    checkpoints.save(state, plain_config)
                if stop:
                    print(f"signal received: saved checkpoint at step {done}, exiting",
                          file=sys.stderr)
                    break
    finally:
        bar.close()
        batches.close()
        writer.close()
        checkpoints.close()
        if best is not None:
            best.checkpoints.close()
    if progress and is_main:
        print(_summary(workdir, start, int(parallel.to_host(state.step)), began, best, config),
              file=sys.stderr)
    return state


def _summary(workdir: Path, start: int, end: int, began: float, best: _Best | None,
             config: ml_collections.ConfigDict) -> str:
    """The closing lines of a run: steps and wall time, the best checkpoint and its scores, where
    the samples are."""
    lines = [f"trained steps {start} -> {end} of {config.train.num_steps} in "
             f"{time.perf_counter() - began:.0f} s; checkpoints in {workdir / 'checkpoints'}"]
    if best is not None and best.scores is not None:
        lines.append(f"best checkpoint ({best.metric}): step {best.step} in "
                     f"{best.checkpoints.directory}; "
                     + " ".join(f"{k} {v:.4g}" for k, v in best.scores.items()))
    if config.train.sample_every_steps:
        lines.append(f"sample grids in {workdir / 'samples'} (and TensorBoard's images)")
    return "\n".join(lines)


def main(argv=None) -> None:
    from importlib import resources

    from absl import app, flags
    from absl import logging as absl_logging

    cli.define_workdir("Directory for checkpoints, logs and samples.")
    cli.define_config(str(resources.files("gan_jax.configs") / "digits_mlp.py"),
                      "Experiment config file (default: configs/digits_mlp.py).")
    # Multi-process runs (see gan_jax/distributed.py for when jax.distributed is started).
    flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
    flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
    flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")
    flags.DEFINE_list("local_device_ids", None, "Local devices this process uses (default: all).")
    flags.DEFINE_bool("multihost", False, "jax.distributed.initialize() with cluster auto-detection "
                      "(TPU pod slices, SLURM, Open MPI).")
    flags.DEFINE_enum("cpu_collectives", "gloo", distributed.CPU_COLLECTIVES,
                      "Cross-process collectives of CPU devices in multi-process runs.")
    flags.DEFINE_string("compilation_cache", "", "Persistent XLA compilation cache: a directory "
                        "(default: $JAX_COMPILATION_CACHE_DIR, else ~/.cache/gan_jax/xla), or "
                        "'off'. A restart loads the compiled steps instead of compiling again.")
    flags.DEFINE_bool("deterministic", True, "Deterministic XLA:GPU kernels (bitwise-repeatable "
                      "GPU runs; measured cost on an H100: none beyond noise).")

    def _main(_):
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
        f = flags.FLAGS
        if f.deterministic:
            parallel.use_deterministic_ops()
        parallel.use_compilation_cache(f.compilation_cache)
        distributed.initialize(f.coordinator_address, f.num_processes, f.process_id,
                               [int(i) for i in f.local_device_ids or ()], f.multihost,
                               f.cpu_collectives)  # before any JAX computation
        try:
            train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)
        except (config_lib.ConfigError, DataError, FloatingPointError, WorkdirBusyError,
                FileNotFoundError, MetricError) as e:
            cli.fail(str(e))
        except OSError as e:  # the workdir is a file, read-only, or its disk is full
            cli.fail(os_error_message(e, flags.FLAGS.workdir))

    cli.exit_on_signal()  # also when main() is called from Python
    app.run(_main, argv=argv, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
