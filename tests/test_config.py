"""Config files load and validate; bad values fail with the key named, before any compute."""

import json
import re
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from gan_jax import config as config_lib
from gan_jax.configs import digits_dcgan, edges2fashion_pix2pix, fashion_cyclegan

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")


def test_expected_configs_exist():
    assert {"digits_dcgan", "mnist_dcgan", "mnist_mlp_lsgan", "fashion_mnist_dcgan",
            "cifar10_dcgan", "cifar10_wgan_gp"} <= set(CONFIG_FILES)


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_files_validate(name):
    """Every config validates, on 8 devices when its batch allows (cifar10_biggan keeps the
    reference's batch 50: 2 devices)."""
    import math

    module = __import__(f"gan_jax.configs.{name}", fromlist=["get_config"])
    config = module.get_config()
    config_lib.validate(config, num_devices=math.gcd(8, config.train.batch_size))


def _set(config, key, value):
    *path, last = key.split(".")
    for part in path:
        config = config[part]
    config[last] = value


@pytest.mark.parametrize("key, value, message", [
    ("train.n_critic", 0, "config.train.n_critic: must be >= 1"),
    ("train.batch_size", 12, "config.train.batch_size: 12 is not divisible by the 8 devices"),
    ("data.resolution", 20, "config.data.resolution: DCGAN cannot produce 20x20 images"),
    ("data.channels", 2, "config.data.channels: must be 1 (grayscale) or 3 (RGB)"),
    ("loss.name", "wasserstein", "config.loss.name: 'wasserstein' is not one of hinge, lsgan"),
    ("model.name", "unet", "config.model.name: 'unet' is not one of cyclegan, dcgan, inpainting, mlp"),
    ("optim.d.name", "lion", "config.optim.d.name: 'lion' is not one of adam, adamw"),
    ("optim.g.schedule", "cosine", "config.optim.g.decay_steps: must be > 0 for schedule 'cosine'"),
    ("optim.g.learning_rate", 0.0, "config.optim.g.learning_rate: must be > 0"),
    ("ema.decay", 1.0, "config.ema.decay: must be in [0, 1)"),
    ("model.d_norm", "batch", "config.model.d_norm: gradient penalties"),  # the default has R1
    ("checkpoint.keep", 0, "config.checkpoint.keep: must be >= 1"),
    ("augment.kind", "adaptive", "config.augment.kind: 'adaptive' is not one of diffaugment, ada"),
    ("augment.ada_interval", 0, "config.augment.ada_interval: must be >= 1"),
    ("loss.pl_weight", 2.0, "config.loss.pl_weight: path length regularisation needs model.name"),
    ("train.seed", -1, "config.train.seed: must be in [0, 2**32), got -1"),
    ("train.seed", 2**32, "config.train.seed: must be in [0, 2**32)"),
    ("eval.seed", -2, "config.eval.seed: must be in [0, 2**32), got -2"),
    ("model.width", 0, "config.model.width: must be >= 1, got 0"),
    ("model.width", -4, "config.model.width: must be >= 1, got -4"),
    ("model.hidden_dims", (512, 0), "config.model.hidden_dims: every entry must be >= 1"),
    ("model.bn_momentum", 5.0, "config.model.bn_momentum: must be in [0, 1]"),
    ("optim.g.b1", 2.0, "config.optim.g.b1: must be in [0, 1), got 2.0"),
    ("optim.d.b2", 1.0, "config.optim.d.b2: must be in [0, 1), got 1.0"),
    ("optim.g.momentum", -0.1, "config.optim.g.momentum: must be in [0, 1)"),
    ("optim.d.eps", -1.0, "config.optim.d.eps: must be > 0, got -1.0"),
    ("optim.g.eps", 0.0, "config.optim.g.eps: must be > 0, got 0.0"),
    ("optim.g.weight_decay", -1e-4, "config.optim.g.weight_decay: must be >= 0"),
    ("optim.d.warmup_steps", -1, "config.optim.d.warmup_steps: must be >= 0"),
    ("train.g_batch_size", 12, "config.train.g_batch_size: 12 is not divisible by the 8 devices"),
    ("loss.r1_mode", "lazy", "config.loss.r1_mode: 'lazy' is not one of folded, separate"),
    ("optim.d.decay", 1.0, "config.optim.d.decay: must be in [0, 1)"),
    ("data.workers", -1, "config.data.workers: must be >= 0 (0: one per core)"),
])
def test_bad_values_name_the_key(key, value, message):
    config = digits_dcgan.get_config()
    _set(config, key, value)
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.validate(config, num_devices=8)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name, key, value, message", [
    ("digits_sngan", "model.g_channels", (32, 0, 32), "config.model.g_channels, d_channels: every"),
    ("digits_sngan", "model.shared_dim", -1, "config.model.shared_dim, attention_resolution: must"),
    ("digits_stylegan2", "stylegan2.mapping_lr_multiplier", 0.0,
     "config.stylegan2.mapping_lr_multiplier: must be > 0, got 0.0"),
])
def test_bad_model_values_name_the_key(name, key, value, message):
    config = __import__(f"gan_jax.configs.{name}", fromlist=["get_config"]).get_config()
    _set(config, key, value)
    with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
        config_lib.validate(config)


def test_math_changes_ignore_run_length_and_logging():
    old = config_lib.to_plain(digits_dcgan.get_config())
    config = digits_dcgan.get_config()
    config.train.num_steps = 10**6
    config.train.log_every_steps = 7
    config.checkpoint.every_steps = 3
    config.checkpoint.keep = 9
    config.data.data_dir = "/elsewhere"
    assert config_lib.math_changes(old, config_lib.to_plain(config)) == []
    config.train.seed = 5
    config.model.width = 16
    assert config_lib.math_changes(old, config_lib.to_plain(config)) == [
        "model.width: 32 -> 16", "train.seed: 0 -> 5"]


def test_configs_saved_before_a_key_existed_compare_as_its_old_behaviour():
    """A workdir saved before g_batch_size/r1_mode/... existed resumes with a config that keeps the
    old behaviour, and is refused where the new value changes the math."""
    new = config_lib.to_plain(digits_dcgan.get_config())
    old = json.loads(json.dumps(new))
    del old["train"]["g_batch_size"], old["optim"]["g"]["decay"], old["optim"]["d"]["eps_in_sqrt"]
    del old["loss"]["r1_mode"], old["loss"]["gan_weight"]
    assert new["loss"]["r1_mode"] == "separate"
    assert config_lib.math_changes(old, new) == []  # no lazy R1: the mode is not used
    old["loss"]["r1_weight"] = new["loss"]["r1_weight"] = 1.0
    old["loss"]["r1_every"] = new["loss"]["r1_every"] = 16
    assert config_lib.math_changes(old, new) == ["loss.r1_mode: 'folded' -> 'separate'"]
    new["loss"]["r1_mode"] = "folded"
    assert config_lib.math_changes(old, new) == []
    new["train"]["g_batch_size"] = 128
    assert config_lib.math_changes(old, new) == ["train.g_batch_size: 0 -> 128"]


@pytest.mark.parametrize("recipe, flipped", [(edges2fashion_pix2pix, True), (fashion_cyclegan, False)])
def test_image_to_image_configs_saved_before_data_flip_keep_their_flips(recipe, flipped):
    """Before data.flip existed pix2pix always flipped its train pairs and CycleGAN never did."""
    new = config_lib.to_plain(recipe.get_config())
    old = json.loads(json.dumps(new))
    del old["data"]["flip"]
    new["data"]["flip"] = flipped
    assert config_lib.math_changes(old, new) == []
    new["data"]["flip"] = not flipped
    assert config_lib.math_changes(old, new) == [f"data.flip: {flipped} -> {not flipped}"]


def test_workdirs_saved_before_train_fraction_existed_trained_on_all_the_data():
    new = config_lib.to_plain(digits_dcgan.get_config())
    old = json.loads(json.dumps(new))
    del old["data"]["train_fraction"], old["data"]["subset_seed"]
    assert config_lib.math_changes(old, new) == []
    new["data"]["train_fraction"] = 0.1
    assert config_lib.math_changes(old, new) == ["data.train_fraction: 1.0 -> 0.1"]


def test_the_input_pipeline_keys_may_change_on_resume():
    old = config_lib.to_plain(digits_dcgan.get_config())
    new = json.loads(json.dumps(old))
    new["data"].update(workers=3, cache="off")
    del old["data"]["workers"], old["data"]["cache"]  # a workdir saved before they existed
    assert config_lib.math_changes(old, new) == []


def test_an_older_saved_config_is_read_with_the_added_keys_old_behaviour():
    """sample/evaluate/export rebuild a run from its saved config: keys added since are filled."""
    new = config_lib.to_plain(digits_dcgan.get_config())
    old = json.loads(json.dumps(new))
    del old["data"]["train_fraction"], old["data"]["subset_seed"], old["data"]["load_size"]
    del old["train"]["g_batch_size"]
    expected = json.loads(json.dumps(new))
    expected["model"]["weight_init"] = "xavier"  # the ResNet's key; unused by this DCGAN
    assert config_lib.with_added_keys(old) == expected
    config_lib.validate(ml_collections.ConfigDict(expected))


def _train_cli(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "gan_jax.train", f"--workdir={tmp_path}", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_unknown_key_fails_naming_it(tmp_path):
    r = _train_cli("--config.train.num_stepz=5", tmp_path=tmp_path)
    assert r.returncode != 0 and "num_stepz" in r.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_cli_bad_type_fails_naming_it(tmp_path):
    r = _train_cli("--config.train.num_steps=many", tmp_path=tmp_path)
    assert r.returncode != 0 and "num_steps" in r.stderr and "many" in r.stderr


def test_cli_bad_value_is_one_line_error(tmp_path):
    r = _train_cli("--config.train.n_critic=0", tmp_path=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: config.train.n_critic: must be >= 1"
    assert "Traceback" not in r.stderr
