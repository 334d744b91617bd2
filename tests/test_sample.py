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


@pytest.mark.slow  # two commands, 40 s at load 5
def test_interpolation_and_truncation_commands(workdir, tmp_path):
    r = run("gan_jax.sample", f"--workdir={workdir}", "--interpolate=slerp", "--num=2",
            "--steps=5", "--truncation=0.5", f"--out={tmp_path / 'strip.png'}")
    assert r.returncode == 0, r.stderr
    grid = np.asarray(Image.open(tmp_path / "strip.png"))
    assert grid.shape == (2 * 9 + 1, 5 * 9 + 1)  # 2 strips of 5 images of 8 px
    for flags, message in ((["--label=3"], "error: --label needs a class-conditional model"),
                           (["--per_class=2"], "error: --per_class needs a class-conditional"),
                           (["--truncation=0"], "error: --truncation must be > 0")):
        r = run("gan_jax.sample", f"--workdir={workdir}", *flags, f"--out={tmp_path / 'x.png'}")
        assert r.returncode == 2 and r.stderr.strip().startswith(message), r.stderr


def test_interpolations_end_at_the_samples_they_join(workdir):
    from gan_jax import sample

    run_, state = sample.restore_workdir(str(workdir))
    ends = sample.generate_images(run_.task, state, 4, seed=7)
    strips = sample.interpolation_strips(run_.task, state, rows=2, steps=3, seed=7, method="lerp")
    np.testing.assert_array_equal(strips[[0, 2, 3, 5]], ends)  # rows join samples (0, 1), (2, 3)
    strips = sample.interpolation_strips(run_.task, state, rows=1, steps=3, seed=7, method="slerp")
    assert np.abs(strips[[0, 2]].astype(int) - ends[:2]).max() <= 1  # float rounding at the ends
    truncated = sample.generate_images(run_.task, state, 4, seed=7, truncation=0.5)
    assert not np.array_equal(truncated, ends)


def test_lerp_and_slerp():
    from gan_jax.sample import lerp, slerp

    a, b = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    t = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(lerp(a, b, t), [[3, 0], [1.5, 1.5], [0, 3]])
    s = slerp(a, b, t)
    np.testing.assert_allclose(s, [[3, 0], [3 / 2 ** 0.5, 3 / 2 ** 0.5], [0, 3]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(slerp(a, 2 * b, t), axis=1), [3, 4.5, 6])
    np.testing.assert_allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel: lerp


def test_truncated_latents_stay_inside_the_threshold():
    from gan_jax import sample
    from gan_jax.configs import digits_dcgan
    from gan_jax.tasks import build_task

    task = build_task(digits_dcgan.get_config())
    z = np.asarray(task.latents(sample.latent_keys(0, 0, 256), truncation=0.5))
    assert z.shape == (256, 64) and np.abs(z).max() <= 0.5 and z.std() > 0.2
    full = np.asarray(task.latents(sample.latent_keys(0, 0, 256)))
    assert np.abs(full).max() > 2.0
