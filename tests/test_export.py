"""Synthetic data export: the formats read back through gan_jax.data with the same pixels and
labels, determinism across chunk sizes and device counts, resuming after an interruption, and the
refusal to overwrite a different export."""

import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import export as export_lib
from gan_jax.checkpoint import Checkpoints
from gan_jax.configs import digits_biggan
from gan_jax.data.sources import make_source
from gan_jax.export import ExportSpec, export
from gan_jax.run import build_run
from conftest import run_main

NUM = 40


def tiny_conditional():
    """A class-conditional ResNet (BigGAN-style) on 8x8 digits, small enough to sample in seconds."""
    config = digits_biggan.get_config()
    config.data.resolution = 8
    m = config.model
    m.g_channels, m.d_channels = (8, 8, 8), (8, 8, 8)
    m.latent_dim, m.shared_dim, m.attention_resolution = 9, 8, 0
    config.train.batch_size = 8
    config.ema.start_step = 0
    config.eval.every_steps = 0
    return config


def initial_checkpoint(config, workdir: Path) -> Path:
    """A workdir with one checkpoint of `config`'s initial state (sampling needs no training)."""
    run = build_run(config, devices=jax.devices()[:1])
    checkpoints = Checkpoints(workdir)
    checkpoints.save(run.init_state(), config_lib.to_plain(config))
    checkpoints.close()
    return workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A class-conditional workdir."""
    return initial_checkpoint(tiny_conditional(), tmp_path_factory.mktemp("export") / "run")


@pytest.fixture(scope="module")
def reference(workdir, tmp_path_factory):
    """An unbroken npz export of NUM examples on 1 device in chunks of 16: (images, labels, dir)."""
    out = tmp_path_factory.mktemp("reference") / "npz"
    export(workdir, out, ExportSpec(NUM, seed=3, batch=8, format="npz"), chunk=16,
           devices=jax.devices()[:1], progress=False)
    with np.load(out / "data.npz") as data:
        return data["images"], data["labels"], out


def test_npz_holds_uint8_images_int32_labels_and_a_manifest(workdir, reference):
    images, labels, out = reference
    assert images.shape == (NUM, 8, 8, 1) and images.dtype == np.uint8 and images.std() > 0
    assert labels.shape == (NUM,) and labels.dtype == np.int32 and len(set(labels)) > 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["step"] == 0 and manifest["seed"] == 3
    assert manifest["counts_per_class"] == {str(c): int(n) for c, n in
                                            enumerate(np.bincount(labels, minlength=10))}
    assert manifest["gan_jax_version"] and len(manifest["config_sha256"]) == 64
    assert sorted(p.name for p in out.iterdir()) == ["data.npz", "manifest.json"]


def test_chunk_size_and_device_count_do_not_change_a_byte(workdir, reference, tmp_path):
    out = tmp_path / "npz"
    export(workdir, out, ExportSpec(NUM, seed=3, batch=8, format="npz"), chunk=13,
           devices=jax.devices(), progress=False)  # 8 devices, chunks not aligned to the blocks
    assert (out / "data.npz").read_bytes() == (reference[2] / "data.npz").read_bytes()


def test_folder_reads_back_through_the_folder_source(workdir, reference, tmp_path):
    images, labels, _ = reference
    out = tmp_path / "folder"
    export(workdir, out, ExportSpec(NUM, seed=3, batch=8), chunk=16, progress=False)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == sorted(f"{labels[i]}/{i:02d}.png" for i in range(NUM))
    order = sorted(range(NUM), key=lambda i: files.index(f"{labels[i]}/{i:02d}.png"))
    source = make_source(f"folder:{out}", 8, 1)  # sorted paths: class-major, then index
    np.testing.assert_array_equal(source.get(np.arange(NUM))["image"], images[order])
    # labels are the class folders' names (sorted names = class numbers)
    assert [int(f.split("/")[0]) for f in files] == list(labels[order])


def test_tfds_reads_back_through_the_tfds_source(workdir, reference, tmp_path):
    images, labels, _ = reference
    export(workdir, tmp_path, ExportSpec(NUM, seed=3, batch=8, format="tfds", name="fakes"),
           chunk=16, progress=False)
    source = make_source("tfds:fakes", 8, 1, data_dir=str(tmp_path))
    assert source.name == "tfds:fakes:train" and source.num_classes == 10
    batch = source.get(np.arange(NUM))
    np.testing.assert_array_equal(batch["image"], images)
    np.testing.assert_array_equal(batch["label"], labels)
    # a real tfds source travels to worker processes and gives the batches of one thread
    from gan_jax.data import BatchIterator

    with BatchIterator(source, 0, 0, 4, workers=1) as one:
        expected = [next(one) for _ in range(3)]
    with BatchIterator(source, 0, 0, 4, workers=2) as two:
        for (step_a, a), (step_b, b) in zip(expected, [next(two) for _ in range(3)]):
            assert step_a == step_b
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["label"], b["label"])


class Killed(Exception):
    pass


def _interrupted(monkeypatch, chunks: int):
    """write_chunk that stops after `chunks` chunks, leaving the next chunk's first file half
    written under its temporary name, as a kill -9 there would."""
    real, calls = export_lib.write_chunk, []

    def write_chunk(out, spec, num_classes, start, images, labels):
        if len(calls) == chunks:
            stop = start + len(images)
            path = (export_lib.folder_path(out, start, int(labels[0]), spec.num, num_classes)
                    if spec.format == "folder" else export_lib._part(out, start, stop, "npz"))
            path.parent.mkdir(exist_ok=True)
            path.with_name(f".{path.name}.tmp").write_bytes(b"half")
            raise Killed
        calls.append(start)
        real(out, spec, num_classes, start, images, labels)
    monkeypatch.setattr(export_lib, "write_chunk", write_chunk)


@pytest.mark.parametrize("fmt", ["folder", pytest.param("npz", marks=pytest.mark.slow)])
def test_resume_skips_finished_chunks_and_equals_an_unbroken_export(workdir, reference, tmp_path,
                                                                    monkeypatch, fmt):
    spec = ExportSpec(NUM, seed=3, batch=8, format=fmt)
    with monkeypatch.context() as patch:
        _interrupted(patch, chunks=2)
        with pytest.raises(Killed):
            export(workdir, tmp_path / "x", spec, chunk=16, progress=False)
    assert not json.loads((tmp_path / "x" / "manifest.json").read_text())["complete"]
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "x").rglob("*")
                if p.is_file() and p.suffix in (".png", ".npz") and not p.name.startswith(".")}
    assert len(finished) == (32 if fmt == "folder" else 2)
    os.utime(tmp_path / "x" / "manifest.json", ns=(0, 0))
    export(workdir, tmp_path / "x", spec, chunk=16, progress=False)
    unbroken = tmp_path / "unbroken"
    export(workdir, unbroken, spec, chunk=16, progress=False)
    if fmt == "folder":
        for path, mtime in finished.items():
            assert path.stat().st_mtime_ns == mtime, path  # not rewritten
    files = sorted(p.relative_to(unbroken) for p in unbroken.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path / "x") for p in (tmp_path / "x").rglob("*")
                  if p.is_file()) == files
    for name in files:
        if name != Path("manifest.json"):
            assert (tmp_path / "x" / name).read_bytes() == (unbroken / name).read_bytes(), name


def test_a_different_export_in_out_is_refused_in_one_line(workdir, reference, monkeypatch):
    out = reference[2]
    before = (out / "data.npz").read_bytes()
    argv = ["export", f"--workdir={workdir}", f"--out={out}", "--num=40", "--seed=4",
            "--batch=8", "--format=npz"]
    code, err = run_main(export_lib.main, argv, monkeypatch)
    assert code == 2
    assert err.strip() == f"error: {out} holds a different export (seed differs); choose another " \
                          "--out or delete it"
    code, err = run_main(export_lib.main, argv[:-1] + ["--format=folder"], monkeypatch)
    assert err.strip().endswith("(format, seed differ); choose another --out or delete it")
    assert (out / "data.npz").read_bytes() == before
    code, err = run_main(export_lib.main, argv[:3] + ["--num=40", "--per_class=2"], monkeypatch)
    assert (code, err.strip()) == (2, "error: give exactly one of --num=N and --per_class=K")


def test_a_folder_that_is_not_an_export_is_refused(workdir, tmp_path):
    (tmp_path / "photo.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"exists and holds no gan_jax export \(manifest.json\)"):
        export(workdir, tmp_path, ExportSpec(4, seed=0), progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["photo.png"]


def test_per_class_gives_k_of_each_class_in_class_order(workdir, reference, tmp_path):
    manifest = export(workdir, tmp_path, ExportSpec(0, seed=3, per_class=2, batch=8,
                                                    format="npz"), progress=False)
    assert manifest["num"] == 20 and set(manifest["counts_per_class"].values()) == {2}
    with np.load(tmp_path / "data.npz") as data:
        np.testing.assert_array_equal(data["labels"], np.repeat(np.arange(10), 2))


def test_unconditional_models_export_index_names_and_no_labels(tiny_config, tmp_path):
    workdir = initial_checkpoint(tiny_config, tmp_path / "run")
    manifest = export(workdir, tmp_path / "folder", ExportSpec(12, seed=0, batch=8),
                      progress=False)
    assert manifest["counts_per_class"] == {"all": 12} and manifest["num_classes"] == 0
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [
        *(f"{i:02d}.png" for i in range(12)), "manifest.json"]
    export(workdir, tmp_path / "npz", ExportSpec(12, seed=0, batch=8, format="npz"),
           progress=False)
    with np.load(tmp_path / "npz" / "data.npz") as data:
        assert list(data) == ["images"]
        np.testing.assert_array_equal(make_source(f"folder:{tmp_path / 'folder'}", 8, 1).images,
                                      data["images"])
    with pytest.raises(ValueError, match=r"^--per_class needs a class-conditional model"):
        export(workdir, tmp_path / "x", ExportSpec(0, seed=0, per_class=2), progress=False)


@pytest.mark.slow  # builds a pix2pix state (about 25 s on the shared machine)
def test_an_image_to_image_workdir_points_to_translate(tmp_path):
    from gan_jax.configs import edges2fashion_pix2pix

    config = edges2fashion_pix2pix.get_config()
    config.model.ngf = config.model.ndf = 4
    workdir = initial_checkpoint(config, tmp_path / "run")
    with pytest.raises(ValueError, match=r"^this workdir's model \(pix2pix\) translates images; "
                                         r"export a folder of translations with python -m "
                                         r"gan_jax.translate --workdir="):
        export(workdir, tmp_path / "x", ExportSpec(4, seed=0), progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_real_kill_9_mid_export_then_the_same_command_equals_an_unbroken_export(workdir,
                                                                                  tmp_path):
    """`python -m gan_jax.export` killed with SIGKILL as soon as its first chunk is recorded; the
    same command again finishes the set, and every file equals an unbroken export's bytes."""
    import signal
    import subprocess
    import sys
    import time

    def command(out):
        return [sys.executable, "-m", "gan_jax.export", f"--workdir={workdir}", f"--out={out}",
                "--num=512", "--seed=5", "--batch=8", "--chunk=8", "--format=folder"]

    out = tmp_path / "killed"
    process = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(out.glob(".parts/*.done")):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no chunk finished in 300 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list((out / ".parts").glob("*.done")))
    assert process.returncode == -signal.SIGKILL and 1 <= done < 64, (process.returncode, done)
    assert not json.loads((out / "manifest.json").read_text())["complete"]

    subprocess.run(command(out), check=True, capture_output=True)
    unbroken = tmp_path / "unbroken"
    subprocess.run(command(unbroken), check=True, capture_output=True)
    files = sorted(p.relative_to(unbroken) for p in unbroken.rglob("*")
                   if p.is_file() and p.name != "manifest.json")
    assert len([f for f in files if f.suffix == ".png"]) == 512
    assert sorted(p.relative_to(out) for p in out.rglob("*")
                  if p.is_file() and p.name != "manifest.json") == files
    for name in files:
        assert (out / name).read_bytes() == (unbroken / name).read_bytes(), name
    assert json.loads((out / "manifest.json").read_text())["complete"]
