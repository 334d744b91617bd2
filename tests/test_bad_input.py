"""Bad input through the commands: one line `error: ...`, exit 2, no traceback, nothing written.

Each row is a case from issue 17 (or an earlier one): command-line arguments and the start of the
error line. `{tmp}` is the test's tmp_path, `{config}` the tiny config file. Every row runs the
command's `main` in this process (a subprocess costs seconds of imports); a few rows also run as
`python -m` subprocesses, for the real exit status and stderr.
"""

import struct
import zlib

import pytest
from PIL import Image

from conftest import run_main, run_module
from gan_jax import evaluate, sample, train

MAINS = {"gan_jax.train": train.main, "gan_jax.sample": sample.main,
         "gan_jax.evaluate": evaluate.main}


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit gray pixels (the pixel data is left out)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def _make_data(tmp):
    (tmp / "empty").mkdir()
    (tmp / "bad").mkdir()
    (tmp / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp / "mixed").mkdir()
    Image.new("RGB", (8, 8)).save(tmp / "mixed" / "a.png")
    Image.new("RGBA", (8, 8)).save(tmp / "mixed" / "b.png")
    (tmp / "dangling").mkdir()
    Image.new("L", (8, 8)).save(tmp / "dangling" / "a.png")
    (tmp / "dangling" / "b.png").symlink_to(tmp / "nowhere.png")
    (tmp / "huge").mkdir()
    (tmp / "huge" / "a.png").write_bytes(_png_header(14000, 14000))


DATA = "--config.data.name=folder:{tmp}/"
TRAIN_CASES = [
    # data (17.3 and before)
    (DATA + "missing", "error: image folder {tmp}/missing does not exist or is not a directory"),
    (DATA + "empty", "error: no image files"),
    (DATA + "bad", "error: 1 unreadable image(s) in {tmp}/bad: broken.png; remove or fix them"),
    (DATA + "mixed", "error: {tmp}/mixed mixes channel layouts: 1 RGB (e.g. a.png), 1 with alpha "
                     "(e.g. b.png); convert the files to one layout, or pass "
                     "--config.data.mixed_channels=convert"),
    (DATA + "dangling", "error: 1 unreadable image(s) in {tmp}/dangling: b.png (dangling symlink "
                        "to {tmp}/nowhere.png); remove or fix them"),
    (DATA + "huge", "error: 1 unreadable image(s) in {tmp}/huge: a.png (too large: 196,000,000 "
                    "pixels > Pillow's limit of 178,956,970, twice PIL.Image.MAX_IMAGE_PIXELS; "
                    "resize it or raise that limit)"),
    ("--config.data.name=tfds:no_such_dataset", "error: unknown tfds data set 'no_such_dataset'"),
    ("--config.data.name=imagenet",
     "error: unknown data set 'imagenet'; known names: digits, fashion_mnist, tfds, folder"),
    # config values and flags (17.4)
    ("--config.train.seed=-1", "error: config.train.seed: must be in [0, 2**32), got -1"),
    ("--config.model.width=0", "error: config.model.width: must be >= 1, got 0"),
    ("--config.model.width=-4", "error: config.model.width: must be >= 1, got -4"),
    ("--config.optim.g.b1=2", "error: config.optim.g.b1: must be in [0, 1), got 2.0"),
    ("--config.optim.d.eps=-1", "error: config.optim.d.eps: must be > 0, got -1.0"),
    ("--config.model.bn_momentum=5", "error: config.model.bn_momentum: must be in [0, 1]"),
    ("--config.train.nonexistent=3",
     "error: --config.train.nonexistent: the config has no such key"),
    ("--config.train.seed=x", "error: flag --config.train.seed=x: invalid literal for int()"),
    ("--config={tmp}/missing.py",
     "error: --config: cannot load the config file: [Errno 2] No such file or directory"),
    ("--config={tmp}/raises.py",
     "error: flag --config={tmp}/raises.py: Error whilst parsing config file: ValueError: boom"),
    ("--no_such_flag", "error: Unknown command line flag 'no_such_flag'"),
]


def _train_args(tmp_path, config_file, arg):
    """The train command's arguments for a TRAIN_CASES row, with its data and config files made."""
    _make_data(tmp_path)
    (tmp_path / "raises.py").write_text("def get_config():\n    raise ValueError('boom')\n")
    config = [] if arg.startswith("--config=") else [f"--config={config_file}"]
    return [f"--workdir={tmp_path / 'run'}", *config, arg.format(tmp=tmp_path)]


def _check_one_line_error(code, stderr, message):
    assert code == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(message), last


@pytest.mark.parametrize("arg, message", TRAIN_CASES)
def test_train_bad_input_is_one_line_error(tiny_config_file, tmp_path, monkeypatch, arg, message):
    args = _train_args(tmp_path, tiny_config_file, arg)
    _check_one_line_error(*run_main(train.main, ["train", *args], monkeypatch),
                          message.format(tmp=tmp_path))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("arg, message", [TRAIN_CASES[i] for i in (0, 8, 14)])
def test_train_subprocess_bad_input_is_one_line_error(tiny_config_file, tmp_path, arg, message):
    r = run_module("gan_jax.train", *_train_args(tmp_path, tiny_config_file, arg))
    _check_one_line_error(r.returncode, r.stderr, message.format(tmp=tmp_path))
    assert not (tmp_path / "run").exists()


COMMAND_CASES = [
    ("gan_jax.train", ["--workdir="], "error: flag --workdir=: --workdir is empty; name a directory"),
    ("gan_jax.train", [], "error: flag --workdir=None: Flag --workdir must have a value"),
    ("gan_jax.sample", ["--workdir="], "error: flag --workdir=: --workdir is empty"),
    ("gan_jax.sample", ["--workdir={tmp}/run", "--num=0"],
     "error: flag --num=0: 0 is not a positive integer"),
    ("gan_jax.sample", ["--workdir={tmp}/run", "--seed=-1"], "error: flag --seed=-1: -1 is not"),
    ("gan_jax.sample", ["--workdir={tmp}/run", "--steps=1"], "error: flag --steps=1: 1 is not"),
    ("gan_jax.evaluate", ["--workdir={tmp}/run", "--num_samples=-5"],
     "error: flag --num_samples=-5: -5 is not"),
    ("gan_jax.evaluate", [], "error: flag --workdir=None: Flag --workdir must have a value"),
]


@pytest.mark.parametrize("command, args, message", COMMAND_CASES)
def test_command_flags_are_one_line_errors(tmp_path, monkeypatch, command, args, message):
    monkeypatch.chdir(tmp_path)  # an empty --workdir must not write into the current directory
    argv = [command, *(a.format(tmp=tmp_path) for a in args)]
    _check_one_line_error(*run_main(MAINS[command], argv, monkeypatch), message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, args, message", [COMMAND_CASES[i] for i in (3, 7)])
def test_command_subprocess_flags_are_one_line_errors(tmp_path, monkeypatch, command, args,
                                                       message):
    monkeypatch.chdir(tmp_path)
    r = run_module(command, *(a.format(tmp=tmp_path) for a in args))
    _check_one_line_error(r.returncode, r.stderr, message)
    assert list(tmp_path.iterdir()) == []
