"""The digits recipes' results are recorded (experiments/digits_mlp/, the default, and
experiments/digits_dcgan/): a change that moves them fails here, so the record is regenerated
(the experiment's run.sh) on purpose."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

from gan_jax.configs import digits_dcgan, digits_mlp
from conftest import recorded_for_this_host
from gan_jax.train import train_and_evaluate

EXPERIMENTS = Path(__file__).parent.parent / "experiments"

STEPS = 200
# sha256 of the EMA generator (params, then collections) after STEPS steps of each recipe, on
# one CPU device with this jax version, per host vector ISA (gan_jax.train.host_isa): XLA:CPU's
# kernel libraries pick kernels by the host's instruction set at run time, so an AVX2 and an
# AVX-512 host give other bits. Measured on an AVX-512 Xeon at 2ca1eb9: capping oneDNN (the dots'
# library) with ONEDNN_MAX_CPU_ISA=AVX2 reproduces the AVX2 digits_mlp digest exactly, but not
# digits_dcgan's (its convolutions take another path; switching off XLA's YNNPACK fusions, which
# have no ISA switch, moves it but not to the AVX2 bits).
RECORDED_JAX = "0.10.2"
RECORDED_DIGESTS = {
    "avx2": {  # recorded at 70fae10 (digits_mlp) and 07217bc (digits_dcgan) on the AVX2 machine used then
        "digits_mlp": "bf418fe9d439dc84ce2fc25c32a56d0ad606414e012e4b2d55b08f6773238a02",
        "digits_dcgan": "fa65fd50a5fa6fe66dde5da0e772abd92f6ee7033e09d647e514e6cfb084b298",
    },
    "avx512": {  # recorded at 2ca1eb9 on an Intel Xeon with AVX-512 (2 cores)
        "digits_mlp": "e8408b03a0579a5125253a2fe9fc321f6a6eee416d0dc834df8058ec42fe7ed5",
        "digits_dcgan": "e5eb0e4d698aac5cb24d8c9cd40ce0b9f079e2a9a861f61db4f72876dae29871",
    },
}
RECIPES = {"digits_mlp": digits_mlp, "digits_dcgan": digits_dcgan}


def ema_digest(state) -> str:
    """sha256 of the bytes of every EMA leaf, in tree order."""
    leaves = jax.tree.leaves(jax.device_get((state.ema_params, state.ema_state)))
    return hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_matches_its_recorded_digest(name, one_device, tmp_path):
    if jax.__version__ != RECORDED_JAX:
        pytest.skip(f"digest recorded with jax {RECORDED_JAX}, this is {jax.__version__}")
    recorded = recorded_for_this_host(RECORDED_DIGESTS)[name]
    config = RECIPES[name].get_config()
    config.train.num_steps = STEPS
    config.eval.every_steps = 0
    config.train.sample_every_steps = 0
    state = train_and_evaluate(config, tmp_path, devices=one_device, progress=False)
    digest = ema_digest(state)
    assert digest == recorded, (
        f"the {name} recipe's results moved on this host (digest {digest}): if on purpose, "
        f"rerun experiments/{name}/run.sh, update its README and RECORDED_DIGESTS")


def _run_in_a_clean_clone(tmp_path, files: list[str], script: str, *args: str,
                          env: dict | None = None) -> tuple[Path, str]:
    """Copies `files` (paths under experiments/) into a fresh git repo, commits them with an old
    commit.txt beside `script`, and runs `script` with PYTHON a stand-in that logs each command
    line (to tmp_path/calls.txt) and does nothing else: (the repo, its short HEAD)."""
    repo = tmp_path / "repo"
    for name in files:
        (repo / "experiments" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXPERIMENTS / name, repo / "experiments" / name)
    (repo / "experiments" / script).parent.joinpath("commit.txt").write_text("old\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    head = subprocess.run(git[:3] + ["rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls.txt"}\n')
    fake.chmod(0o755)
    subprocess.run(["bash", str(repo / "experiments" / script), *args], check=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), **(env or {})},
                   capture_output=True)
    return repo, head


@pytest.mark.parametrize("name", ["digits_biggan", "digits_dcgan", "digits_mlp", "digits_progressive",
                                  "digits_sngan", "digits_stylegan2"])
def test_run_sh_trains_its_own_recipe_and_names_the_clean_commit(name, tmp_path):
    """run.sh trains its experiment's recipe by name (digits_dcgan's once trained whatever the
    train command's default was, which became digits_mlp) and records `git describe` of a clean
    checkout without -dirty (its own redirect once emptied the tracked commit.txt first, so every
    record read as dirty)."""
    repo, head = _run_in_a_clean_clone(tmp_path, [f"{name}/run.sh", "digits_run.sh"],
                                       f"{name}/run.sh", str(tmp_path / "work"))
    assert (repo / "experiments" / name / "commit.txt").read_text() == head + "\n"
    log = (tmp_path / "calls.txt").read_text().splitlines()
    train = [line for line in log if line.startswith("-m gan_jax.train")]
    assert train == [f"-m gan_jax.train --config={repo}/configs/{name}.py "
                     f"--workdir={tmp_path / 'work'}"]
    per_class = [line for line in log if "--per_class" in line]
    assert per_class == ([f"-m gan_jax.sample --workdir={tmp_path / 'work'} --per_class=8 --seed=0 "
                          f"--out={repo}/experiments/{name}/classes.png"]
                         if name == "digits_biggan" else [])


def test_augmentation_run_sh_names_the_clean_commit(tmp_path):
    """experiments/augmentation/run.sh had the same redirect defect (its record read f68a08f only
    because commit.txt was not yet tracked)."""
    repo, head = _run_in_a_clean_clone(tmp_path, ["augmentation/run.sh"], "augmentation/run.sh",
                                       str(tmp_path / "out"))
    assert (repo / "experiments" / "augmentation" / "commit.txt").read_text() == head + "\n"
    [call] = (tmp_path / "calls.txt").read_text().splitlines()
    assert call == f"{repo}/experiments/augmentation/augment.py --out={tmp_path / 'out'}"


def test_small_data_ada_run_sh_names_the_clean_commit(tmp_path):
    """experiments/small_data_ada/run.sh had the redirect defect too (its 4,000-step record reads
    -dirty)."""
    repo, head = _run_in_a_clean_clone(tmp_path, ["small_data_ada/run.sh"], "small_data_ada/run.sh",
                                       str(tmp_path / "work"), env={"ARMS": " "})  # no arm trains
    assert (repo / "experiments" / "small_data_ada" / "commit.txt").read_text() == head + "\n"
