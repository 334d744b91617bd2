"""The `translate` command: per-image keys, size handling, inputs and outputs, bad input.

In-process tests use `StandIn`, a task whose generator is a fixed 1x1 convolution plus a
key-dependent offset and which, like the ResNet generator, takes only sides that are multiples
of 4; `sample.restore_workdir` is replaced to hand it out. The subprocess tests use a real
noise-to-image workdir (a tiny DCGAN) for the errors that need one.
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import run_module
from gan_jax import sample, translate

W_A2B = np.array([[0.5, -0.25, 0.0], [0.25, 0.5, 0.0], [0.0, 0.0, -1.0]], np.float32)


@dataclasses.dataclass(frozen=True)
class StandIn:
    """translate(x) = tanh(x @ W[direction] + 0.1 u), u ~ U[0, 1) from the image's key."""

    image_to_image = True
    directions = ("a2b", "b2a")

    def translate(self, g_params, g_state, images, keys, direction="a2b"):
        if images.shape[1] % 4 or images.shape[2] % 4:
            raise ValueError(f"sides must be multiples of 4, got {images.shape}")
        u = jax.vmap(lambda k: jax.random.uniform(k, ()))(keys)
        return jnp.tanh(images @ g_params[direction] + 0.1 * u[:, None, None, None])


def expected(image: np.ndarray, seed: int, index: int, direction: str = "a2b") -> np.ndarray:
    """The stand-in's output for uint8 RGB `image`, computed by hand in NumPy."""
    u = float(jax.random.uniform(jax.random.fold_in(jax.random.key(seed), index), ()))
    x = image.astype(np.float64) / 127.5 - 1.0
    y = np.tanh(x @ PARAMS[direction].astype(np.float64) + 0.1 * u)
    return np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)


PARAMS = {"a2b": W_A2B, "b2a": W_A2B.T}
STATE = types.SimpleNamespace(sampling_params=PARAMS, sampling_state={})
SHAPE = (8, 8, 3)


def _images(n, h=8, w=8, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def _translate(inputs, seed=0, direction="a2b", batch=4, log=lambda m: None):
    return translate.translate_images(StandIn(), STATE, inputs, SHAPE, seed, direction, batch, log)


def test_each_image_is_its_own_hand_computed_translation():
    inputs = _images(5)
    for direction in ("a2b", "b2a"):
        out = _translate(inputs, seed=7, direction=direction)
        for i, (x, y) in enumerate(zip(inputs, out)):
            # float32 vs float64: at most one code value apart
            assert np.abs(y.astype(int) - expected(x, 7, i, direction)).max() <= 1
    assert not np.array_equal(_translate(inputs, seed=7)[0], _translate(inputs, seed=8)[0])


def test_output_does_not_depend_on_batch_or_other_images():
    inputs = _images(7)
    one = _translate(inputs, batch=1)
    for batch in (3, 7, 16):
        assert all(np.array_equal(a, b) for a, b in zip(one, _translate(inputs, batch=batch)))
    # image i's key is its index: the first three alone give the same bytes
    assert all(np.array_equal(a, b) for a, b in zip(one, _translate(inputs[:3], batch=2)))


def test_sizes_the_network_takes_are_kept_others_resized_and_back():
    lines = []
    inputs = _images(1, 12, 16) + _images(1, 10, 10) + _images(1, 12, 16, seed=1)
    out = _translate(inputs, log=lines.append)
    assert [y.shape for y in out] == [(12, 16, 3), (10, 10, 3), (12, 16, 3)]
    assert lines == [
        "2 image(s) of 12x16: translated at their own size",
        "1 image(s) of 10x10: the network does not take 10x10; resized to 8x8, translated and "
        "resized back"]
    assert np.abs(out[2].astype(int) - expected(inputs[2], 0, 2)).max() <= 1
    # by hand: image 1 squashed to the training size, translated with key 1, resized back
    small = _translate([inputs[0], translate.resize(inputs[1], 8, 8)])[1]
    assert np.array_equal(out[1], translate.resize(small, 10, 10))


def test_channels_are_converted_to_the_models():
    gray = np.full((8, 8, 1), 200, np.uint8)
    rgba = np.concatenate([np.full((8, 8, 3), 200, np.uint8), np.zeros((8, 8, 1), np.uint8)], -1)
    out = _translate([gray, rgba])
    assert np.array_equal(out[0], expected(np.full((8, 8, 3), 200, np.uint8), 0, 0))
    assert np.array_equal(out[1], expected(np.full((8, 8, 3), 200, np.uint8), 0, 1))


def test_a_direction_the_task_lacks_is_refused():
    @dataclasses.dataclass(frozen=True)
    class OneWay(StandIn):
        directions = ("a2b",)

    with pytest.raises(ValueError, match=r"^this model translates a2b only, got --direction=b2a$"):
        translate.translate_images(OneWay(), STATE, _images(1), SHAPE, 0, "b2a")


@pytest.fixture
def stand_in_workdir(monkeypatch):
    """`sample.restore_workdir` handing out the stand-in (any workdir name)."""
    run = types.SimpleNamespace(task=StandIn(), image_shape=SHAPE,
                                config=types.SimpleNamespace(model=types.SimpleNamespace(name="x")))
    monkeypatch.setattr(sample, "restore_workdir", lambda workdir, checkpoint: (run, STATE))


def _folder(path, inputs, names):
    path.mkdir()
    for name, x in zip(names, inputs):
        Image.fromarray(x).save(path / name)
    return path


def test_folder_and_npz_give_the_same_bytes_twice(stand_in_workdir, tmp_path):
    inputs = _images(5)
    names = ["c.png", "a.png", "b.bmp", "e.png", "d.png"]
    folder = _folder(tmp_path / "in", inputs, names)
    order = np.argsort(names)
    np.savez(tmp_path / "in.npz", images=np.stack(inputs)[order])
    for run in ("1", "2"):
        translate.translate_path("w", str(folder), str(tmp_path / f"out{run}"), seed=3, batch=2,
                                 log=lambda m: None)
        translate.translate_path("w", str(tmp_path / "in.npz"), str(tmp_path / f"out{run}.npz"),
                                 seed=3, batch=4, log=lambda m: None)
    written = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert written == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    for name in written:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
    assert (tmp_path / "out1.npz").read_bytes() == (tmp_path / "out2.npz").read_bytes()
    npz = np.load(tmp_path / "out1.npz")["images"]
    folder_out = np.stack([np.asarray(Image.open(tmp_path / "out1" / n)) for n in written])
    assert npz.dtype == np.uint8 and np.array_equal(npz, folder_out)
    assert np.abs(npz[0].astype(int) - expected(inputs[1], 3, 0)).max() <= 1  # a.png is index 0


def test_single_file_gives_one_png(stand_in_workdir, tmp_path):
    x = _images(1)[0]
    Image.fromarray(x).save(tmp_path / "x.png")
    translate.translate_path("w", str(tmp_path / "x.png"), str(tmp_path / "y.png"), seed=5,
                             log=lambda m: None)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png")), _translate([x], seed=5)[0])


@pytest.mark.parametrize("make, out, message", [
    (lambda t: None, "o.npz", "--input {t}/in.npz does not exist"),
    (lambda t: (t / "in.npz").mkdir(), "o", "--input {t}/in.npz holds no image files"),
    (lambda t: np.savez(t / "in.npz", x=np.zeros((1, 8, 8, 3), np.uint8)), "o.npz",
     "--input {t}/in.npz has no array 'images' (it has: x); save the images under that key"),
    (lambda t: np.savez(t / "in.npz", images=np.zeros((1, 8, 8, 3), np.float32)), "o.npz",
     "--input {t}/in.npz: 'images' must be uint8 (N, H, W, C) with C 1, 3 or 4, got float32 of "
     "shape (1, 8, 8, 3)"),
    (lambda t: np.savez(t / "in.npz", images=np.zeros((8, 8, 3), np.uint8)), "o.npz",
     "--input {t}/in.npz: 'images' must be uint8 (N, H, W, C) with C 1, 3 or 4, got uint8 of "
     "shape (8, 8, 3)"),
    (lambda t: np.savez(t / "in.npz", images=np.zeros((0, 8, 8, 3), np.uint8)), "o.npz",
     "--input {t}/in.npz: 'images' holds no images"),
    (lambda t: np.savez(t / "in.npz", images=np.zeros((1, 8, 8, 3), np.uint8)), "o.png",
     "--out must end in .npz for an .npz input, got 'o.png'"),
])
def test_bad_input_is_refused_before_anything_is_read_or_written(stand_in_workdir, tmp_path, make,
                                                                   out, message):
    make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError) as e:
        translate.translate_path("w", str(tmp_path / "in.npz"), str(tmp_path / out))
    assert str(e.value).startswith(message.format(t=tmp_path))
    assert sorted(tmp_path.rglob("*")) == before


def test_names_that_collide_are_refused(stand_in_workdir, tmp_path):
    _folder(tmp_path / "in", _images(2), ["a.png", "a.bmp"])
    with pytest.raises(ValueError, match=r"^a.bmp and a.png would both be written as a.png; "
                                         r"rename one$"):
        translate.translate_path("w", str(tmp_path / "in"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def save_initial_checkpoint(config, workdir):
    """WORKDIR/checkpoints/0: the initial state of `config`, as `train` would save it."""
    from gan_jax import config as config_lib
    from gan_jax.checkpoint import Checkpoints
    from gan_jax.run import build_run

    run = build_run(config, devices=jax.devices()[:1])
    checkpoints = Checkpoints(workdir)
    checkpoints.save(run.init_state(), config_lib.to_plain(config))
    checkpoints.close()
    return workdir


@pytest.fixture(scope="module")
def dcgan_workdir(tmp_path_factory, tiny_config_file):
    from conftest import load_config

    return save_initial_checkpoint(load_config(tiny_config_file),
                                   tmp_path_factory.mktemp("translate") / "run")


@pytest.mark.parametrize("args, message", [
    (["--input={t}/missing.png", "--out={t}/o.png"], "error: --input {t}/missing.png does not exist"),
    (["--input={t}/x.png", "--out={t}/o.png", "--direction=up"],
     "error: --direction must be one of a2b, b2a, fill, got 'up'"),
    (["--input={t}/empty", "--out={t}/o"], "error: --input {t}/empty holds no image files"),
    (["--input={t}/x.png", "--out={t}/o.png"],
     "error: this workdir's model (dcgan) makes images from noise, not from images; use "
     "python -m gan_jax.sample"),
])
def test_command_bad_input_is_one_line_exit_2_nothing_written(dcgan_workdir, tmp_path, args,
                                                              message):
    (tmp_path / "empty").mkdir()
    Image.fromarray(_images(1)[0]).save(tmp_path / "x.png")
    before = sorted(tmp_path.rglob("*"))
    r = run_module("gan_jax.translate", f"--workdir={dcgan_workdir}",
                   *[a.format(t=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(t=tmp_path)), r.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_sample_on_an_image_to_image_workdir_points_to_translate(stand_in_workdir, tmp_path):
    with pytest.raises(ValueError, match=r"^this workdir's model \(x\) translates images; use "
                                         r"python -m gan_jax.translate --workdir=w --input=\.\.\. "
                                         r"--out=\.\.\.$"):
        sample.sample_from_workdir("w", 4, 0, str(tmp_path / "s.png"))
    assert not (tmp_path / "s.png").exists()


@pytest.fixture(scope="module")
def pix2pix_workdir(tmp_path_factory):
    """An initial checkpoint of a narrow edges2fashion pix2pix (U-Net 32, batch norm, dropout)."""
    from gan_jax.configs import edges2fashion_pix2pix

    config = edges2fashion_pix2pix.get_config()
    config.model.ngf = config.model.ndf = 4
    return save_initial_checkpoint(config, tmp_path_factory.mktemp("pix2pix") / "run")


@pytest.mark.slow  # about 2.5 min on 2 loaded cores (a pix2pix checkpoint, three compiles)
def test_pix2pix_folder_and_npz_bytes_are_stable(pix2pix_workdir, tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    folder = _folder(tmp_path / "in", [x[..., 0] for x in inputs], ["0.png", "1.png", "2.png"])
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(folder / "3.png")
    np.savez(tmp_path / "in.npz", images=inputs)
    lines = []
    for run in ("1", "2"):
        translate.translate_path(str(pix2pix_workdir), str(folder), str(tmp_path / f"o{run}"),
                                 seed=1, batch=2, log=lines.append)
    translate.translate_path(str(pix2pix_workdir), str(tmp_path / "in.npz"),
                             str(tmp_path / "o.npz"), seed=1, batch=3, log=lines.append)
    names = ["0.png", "1.png", "2.png", "3.png"]
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == names
    assert all((tmp_path / "o1" / n).read_bytes() == (tmp_path / "o2" / n).read_bytes()
               for n in names)
    npz = np.load(tmp_path / "o.npz")["images"]
    assert npz.shape == (3, 32, 32, 1) and npz.std() > 0
    assert np.array_equal(npz[..., 0], np.stack([np.asarray(Image.open(tmp_path / "o1" / n))
                                                 for n in names[:3]]))
    assert np.asarray(Image.open(tmp_path / "o1" / "3.png")).shape == (20, 24)
    # floats, not just bytes: a batch of 3 gives bitwise what three batches of one give
    run, state = sample.restore_workdir(str(pix2pix_workdir), "latest")
    args = (run.task, state.sampling_params, state.sampling_state)
    keys = translate.image_keys(1, [0, 1, 2])
    three = translate._translate(*args, inputs, keys, "a2b")
    ones = [translate._translate(*args, inputs[i:i + 1], keys[i:i + 1], "a2b") for i in range(3)]
    assert np.array_equal(np.asarray(three), np.concatenate(ones))
    assert lines[:2] == ["3 image(s) of 32x32: translated at their own size",
                         "1 image(s) of 20x24: the network does not take 20x24; resized to "
                         "32x32, translated and resized back"]
