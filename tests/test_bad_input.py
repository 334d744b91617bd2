"""Bad data through the `train` command: one line naming the problem, exit 2, nothing written."""

import pytest
from PIL import Image

from conftest import run_module


@pytest.mark.parametrize("name, message", [
    ("folder:{tmp}/missing", "error: image folder {tmp}/missing does not exist or is not a directory"),
    ("folder:{tmp}/empty", "error: no image files"),
    ("folder:{tmp}/bad", "error: 1 unreadable image(s) in {tmp}/bad: broken.png; remove or fix them"),
    ("folder:{tmp}/mixed", "error: {tmp}/mixed mixes channel layouts: 1 RGB (e.g. a.png), "
                           "1 with alpha (e.g. b.png); convert the files to one layout, or pass "
                           "--config.data.mixed_channels=convert"),
    ("tfds:no_such_dataset", "error: unknown tfds data set 'no_such_dataset'"),
    ("imagenet", "error: unknown data set 'imagenet'; known names: digits, fashion_mnist, tfds, folder"),
])
def test_bad_data_is_one_line_error_before_training(tiny_config_file, tmp_path, name, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "mixed").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "mixed" / "a.png")
    Image.new("RGBA", (8, 8)).save(tmp_path / "mixed" / "b.png")
    workdir = tmp_path / "run"
    r = run_module("gan_jax.train", f"--workdir={workdir}", f"--config={tiny_config_file}",
                   f"--config.data.name={name.format(tmp=tmp_path)}")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(message.format(tmp=tmp_path)), last
    assert "Traceback" not in r.stderr
    assert not workdir.exists()
