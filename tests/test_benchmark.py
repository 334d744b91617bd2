"""`benchmark --data`: the input pipeline's table."""

import re

from PIL import Image

from gan_jax import benchmark


def test_write_jpegs_are_512x384_rgb(tmp_path):
    benchmark.write_jpegs(tmp_path, 2)
    for path in sorted(tmp_path.iterdir()):
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (512, 384))


def test_data_rows_time_each_resolution_with_the_processes_the_files_allow():
    rows = benchmark.data_rows(4, resolutions=(8, 16))  # 4 files: one process at most
    assert rows[:2] == ["| px | decode img/s, 1 process | cached batches img/s |", "|---|---|---|"]
    assert [re.fullmatch(r"\| (\d+) \| [\d,]+ \| [\d,]+ \|", row)[1] for row in rows[2:]] == ["8", "16"]
