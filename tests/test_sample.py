"""The train and sample commands end to end, as a user runs them."""

import numpy as np
import pytest
from PIL import Image

from conftest import run_module as run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_config_file):
    root = tmp_path_factory.mktemp("cli")
    r = run("gan_jax.train", f"--workdir={root / 'run'}", f"--config={tiny_config_file}",
            "--config.train.num_steps=2", "--config.train.sample_every_steps=2")
    assert r.returncode == 0, r.stderr
    return root / "run"


def test_train_command_writes_checkpoint_and_grid(workdir):
    assert (workdir / "checkpoints" / "2").is_dir()
    grid = np.asarray(Image.open(workdir / "samples" / "step_0000002.png"))
    assert grid.shape == (2 * 9 + 1, 2 * 9 + 1)  # 2x2 grid of 8 px images, 1 px padding


def test_train_command_continues_when_num_steps_is_raised(workdir, tiny_config_file):
    r = run("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}",
            "--config.train.num_steps=3")
    assert r.returncode == 0, r.stderr
    assert (workdir / "checkpoints" / "3").is_dir()


def test_sample_same_seed_same_bytes(workdir, tmp_path):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        r = run("gan_jax.sample", f"--workdir={workdir}", "--num=5", f"--seed={seed}",
                f"--out={tmp_path / name}.png")
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / f"{name}.png").read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_sample_npz_holds_uint8_images(workdir, tmp_path):
    r = run("gan_jax.sample", f"--workdir={workdir}", "--num=5", "--seed=3",
            f"--out={tmp_path / 'x.npz'}")
    assert r.returncode == 0, r.stderr
    images = np.load(tmp_path / "x.npz")["images"]
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    assert images.std() > 0


def test_sample_without_checkpoint_is_one_line_error(tmp_path):
    r = run("gan_jax.sample", f"--workdir={tmp_path}", "--out=x.png")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: no checkpoint in")


@pytest.mark.parametrize("checkpoint, message", [
    ("bogus", "error: --checkpoint must be latest, best or a step number, got 'bogus'"),
    ("best", "error: no best checkpoint in"),
    ("7", "error: no checkpoint 7 in"),
])
def test_sample_checkpoint_choice_errors(workdir, tmp_path, checkpoint, message):
    r = run("gan_jax.sample", f"--workdir={workdir}", f"--checkpoint={checkpoint}",
            f"--out={tmp_path / 'x.png'}")
    assert r.returncode == 2 and r.stderr.strip().startswith(message), r.stderr


def test_sample_by_step(workdir, tmp_path, tiny_config_file):
    r = run("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}",
            "--config.train.num_steps=3", "--config.train.sample_every_steps=2")
    assert r.returncode == 0, r.stderr  # (continues to step 3 unless another test already did)
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2, 3]
    out = {}
    for checkpoint in ["latest", *map(str, steps)]:
        path = tmp_path / f"{checkpoint}.npz"
        r = run("gan_jax.sample", f"--workdir={workdir}", f"--checkpoint={checkpoint}",
                "--num=4", f"--out={path}")
        assert r.returncode == 0, r.stderr
        out[checkpoint] = path.read_bytes()
    assert out["latest"] == out[str(steps[-1])] != out[str(steps[0])]
