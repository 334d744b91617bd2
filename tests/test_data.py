"""Tests for gan_jax.data: sources (digits, IDX/fashion_mnist, tfds, folder) and deterministic batching."""

from __future__ import annotations

import collections
import functools
import gzip
import os
import time

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from gan_jax.data import BatchIterator, DataError, batch_indices, make_source, read_idx
from gan_jax.data.pipeline import epoch_permutation

# --------------------------------------------------------------------------------------- digits


def test_digits_native_resolution_matches_sklearn():
    source = make_source("digits", 8, 1)
    batch = source.get(np.arange(source.num_examples))
    assert source.num_examples == 1797 and source.image_shape == (8, 8, 1) and source.num_classes == 10
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (1797, 8, 8, 1)
    assert batch["label"].dtype == np.int32 and set(batch["label"]) == set(range(10))
    expected = np.rint(load_digits().images[0] / 16 * 255).astype(np.uint8)
    np.testing.assert_array_equal(batch["image"][0, ..., 0], expected)
    assert batch["image"].min() == 0 and batch["image"].max() == 255


def test_digits_resized_and_rgb():
    source = make_source("digits", 16, 3)
    batch = source.get(np.array([0, 5, 1796]))
    assert source.image_shape == (16, 16, 3) and batch["image"].shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(batch["image"][..., 0], batch["image"][..., 2])
    np.testing.assert_array_equal(batch["label"], load_digits().target[[0, 5, 1796]])
    np.testing.assert_array_equal(source.get(np.array([5]))["image"][0], batch["image"][1])  # pure


@pytest.mark.parametrize("spec, resolution, channels, words", [
    ("nope", 16, 1, ["nope", "digits", "fashion_mnist", "tfds", "folder"]),
    ("digits", 16, 2, ["channels", "1 or 3"]),
    ("digits", 0, 1, ["resolution"]),
    ("digits:extra", 16, 1, ["digits:extra"]),
    ("fashion_mnist:validation", 16, 1, ["validation", "train", "test", "all"]),
])
def test_bad_specs_raise_one_line_data_error(spec, resolution, channels, words):
    with pytest.raises(DataError) as info:
        make_source(spec, resolution, channels)
    message = str(info.value)
    assert "\n" not in message and all(word in message for word in words)


# ------------------------------------------------------------------------------- IDX / fashion


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    """Serialise an array as IDX: magic 00 00 <type> <ndim>, big-endian dims, big-endian data."""
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype, type_code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.float32, 0x0D)])
def test_read_idx_roundtrip(tmp_path, compress, dtype, type_code):
    values = np.arange(24).reshape(2, 3, 4)
    array = (values * 10 if dtype == np.uint8 else values * 7 - 20).astype(dtype)
    data = idx_bytes(array, type_code)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize("data, words", [
    (b"\x08\x03\x00\x00" + bytes(12), ["not an IDX file"]),
    (b"\x00\x00\x07\x01" + bytes(8), ["type code 0x07"]),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x02" + bytes(3), ["needs 16"]),
])
def test_read_idx_rejects_bad_files(tmp_path, data, words):
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match=words[0]):
        read_idx(path)


def test_fashion_mnist_missing_files_explain_fix(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        make_source("fashion_mnist", 28, 1, data_dir=str(tmp_path))
    assert "GAN_JAX_FASHION_MNIST_DIR" in str(info.value)


def test_fashion_mnist_env_var_overrides_dir(tmp_path, monkeypatch):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    labels = np.array([3, 0, 9], np.uint8)
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 0x08)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels, 0x08)))
    monkeypatch.setenv("GAN_JAX_FASHION_MNIST_DIR", str(tmp_path))
    source = make_source("fashion_mnist:all", 28, 3)
    batch = source.get(np.arange(6))
    assert source.num_examples == 6 and batch["image"].shape == (6, 28, 28, 3)
    np.testing.assert_array_equal(batch["image"][4, ..., 1], images[1])
    np.testing.assert_array_equal(batch["label"], [3, 0, 9, 3, 0, 9])


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train = make_source("fashion_mnist", 28, 1)
    test = make_source("fashion_mnist:test", 28, 1)
    assert (train.num_examples, test.num_examples) == (60000, 10000)
    assert train.image_shape == (28, 28, 1) and train.num_classes == 10
    batch = test.get(np.arange(10000))
    assert batch["image"].shape == (10000, 28, 28, 1) and batch["image"].dtype == np.uint8
    assert sorted(set(batch["label"])) == list(range(10)) and np.bincount(batch["label"]).tolist() == [1000] * 10
    assert batch["image"].max() == 255


# ------------------------------------------------------------------------------------------ tfds


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("name, native", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
@pytest.mark.parametrize("resolution, channels", [(None, None), (16, 1), (20, 3)])
def test_tfds_mock_data(tfds, name, native, resolution, channels):
    resolution = resolution or native[0]
    channels = channels or native[2]
    with tfds.testing.mock_data(num_examples=5):
        source = make_source(f"tfds:{name}:test", resolution, channels)
        raw = tfds.data_source(name, split="test")
        batch = source.get(np.array([4, 0, 4]))
    assert source.num_examples == 5 and source.num_classes == 10
    assert source.image_shape == (resolution, resolution, channels)
    assert batch["image"].shape == (3, resolution, resolution, channels) and batch["image"].dtype == np.uint8
    assert batch["label"].dtype == np.int32 and batch["label"].tolist() == [int(raw[i]["label"]) for i in (4, 0, 4)]
    np.testing.assert_array_equal(batch["image"][0], batch["image"][2])
    if (resolution, resolution, channels) == native:
        np.testing.assert_array_equal(batch["image"][1], raw[0]["image"])


def test_tfds_unprepared_fails_fast_with_instructions(tfds, tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        make_source("tfds:mnist", 16, 1, data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "'mnist'" in message and "download" in message and str(tmp_path) in message and "\n" not in message


def test_tfds_unprepared_in_the_default_data_dir_is_one_line(tfds):
    # tfds raises KeyError("... `splits` is empty ...") here, not NotImplementedError.
    if tfds.builder("mnist").is_prepared():
        pytest.skip("mnist is prepared in the default TFDS data dir of this machine")
    with pytest.raises(DataError, match=r"tfds data set 'mnist' \(split 'train'\) is not prepared"):
        make_source("tfds:mnist", 28, 1)


def test_tfds_unknown_and_non_image(tfds, tmp_path):
    with pytest.raises(DataError, match="unknown tfds data set 'nope'; see tfds.list_builders()"):
        make_source("tfds:nope", 16, 1, data_dir=str(tmp_path))
    with pytest.raises(DataError, match="no 'image' feature"):
        make_source("tfds:imdb_reviews", 16, 1, data_dir=str(tmp_path))


@pytest.mark.parametrize("error, prepared, words", [
    (NotImplementedError("Random access ... FileFormat.TFRECORD"), True, ["prepared as", "array_record"]),
    (ValueError('Unknown split "bogus".\nmore'), False, ["split 'bogus'", 'Unknown split "bogus".']),
])
def test_tfds_open_errors_become_one_line(tfds, monkeypatch, tmp_path, error, prepared, words):
    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(tfds, "data_source", fail)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: prepared)
    with pytest.raises(DataError) as info:
        make_source("tfds:mnist:bogus", 16, 1, data_dir=str(tmp_path))
    assert all(word in str(info.value) for word in words) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------- folder


def split_image(size: tuple[int, int], left: tuple, right: tuple, mode: str = "RGB") -> Image.Image:
    """An image whose left half is `left` and right half is `right`."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def test_folder_loads_converts_and_crops(tmp_path):
    (tmp_path / "sub").mkdir()
    # 40x20, left red / right blue: the center 20x20 crop straddles both halves.
    split_image((40, 20), (255, 0, 0), (0, 0, 255)).save(tmp_path / "b_wide.png")
    # 12x36 tall: top rows green, rest white; the center crop is all white.
    tall = Image.new("RGB", (12, 36), (255, 255, 255))
    tall.paste((0, 255, 0), (0, 0, 12, 6))
    tall.save(tmp_path / "sub" / "c_tall.JPG", quality=100)
    Image.new("RGBA", (10, 10), (10, 20, 30, 0)).save(tmp_path / "a_rgba.png")
    Image.new("L", (10, 10), 200).save(tmp_path / "d_gray.bmp")
    Image.new("P", (10, 10), 3).save(tmp_path / "e_palette.gif")
    (tmp_path / "notes.txt").write_text("not an image")

    source = make_source(f"folder:{tmp_path}", 10, 3, mixed_channels="convert")
    images = source.get(np.arange(source.num_examples))["image"]
    assert source.num_examples == 5 and source.num_classes is None and images.shape == (5, 10, 10, 3)
    assert "label" not in source.get(np.array([0]))
    np.testing.assert_array_equal(images[0], np.broadcast_to([10, 20, 30], (10, 10, 3)))  # a_rgba
    wide = images[1].astype(int)  # b_wide: 20x10 after resize, crop keeps columns 5..14
    assert (wide[:, :3] == [255, 0, 0]).all() and (wide[:, -3:] == [0, 0, 255]).all()
    np.testing.assert_array_equal(images[2], np.full((10, 10, 3), 200))  # d_gray
    assert np.abs(images[4].astype(int) - 255).max() <= 3  # sub/c_tall: sorted last, center crop is white
    assert source.name.endswith(str(tmp_path))

    gray = make_source(f"folder:{tmp_path}", 10, 1, mixed_channels="convert").get(np.arange(5))["image"]
    assert gray.shape == (5, 10, 10, 1)
    np.testing.assert_array_equal(gray[2, ..., 0], np.full((10, 10), 200))
    assert abs(int(gray[1, 0, 0, 0]) - round(0.299 * 255)) <= 1  # red -> luma


@pytest.mark.parametrize("modes, message", [
    (("RGB", "L"), r"mixes channel layouts: 1 RGB \(e\.g\. a\.png\), 1 grayscale \(e\.g\. b\.png\)"),
    (("RGB", "RGBA", "RGB"), r"mixes channel layouts: 2 RGB \(e\.g\. a\.png\), 1 with alpha "
                             r"\(e\.g\. b\.png\)"),
])
def test_folder_with_mixed_channel_layouts_is_refused(tmp_path, modes, message):
    for name, mode in zip("abc", modes):
        Image.new(mode, (8, 8)).save(tmp_path / f"{name}.png")
    with pytest.raises(DataError, match=message + r".*--config\.data\.mixed_channels=convert"):
        make_source(f"folder:{tmp_path}", 8, 3)
    assert make_source(f"folder:{tmp_path}", 8, 3, mixed_channels="convert").num_examples == len(modes)
    uniform = tmp_path / "uniform"
    uniform.mkdir()
    Image.new("RGBA", (8, 8)).save(uniform / "x.png")
    assert make_source(f"folder:{uniform}", 8, 3).num_examples == 1  # alpha alone is no mix


def test_folder_order_is_deterministic(tmp_path):
    for i in (3, 1, 2):
        Image.new("L", (8, 8), i * 50).save(tmp_path / f"img{i}.png")
    first = make_source(f"folder:{tmp_path}", 8, 1).get(np.arange(3))["image"]
    np.testing.assert_array_equal(first[:, 0, 0, 0], [50, 100, 150])
    np.testing.assert_array_equal(make_source(f"folder:{tmp_path}", 8, 1).get(np.arange(3))["image"], first)


def test_folder_16_bit_gray_keeps_the_high_byte(tmp_path):
    """16-bit gray was clipped to 255 (mean 254.5 on random images); now value >> 8, as Pillow
    decodes 16-bit RGB."""
    values = np.random.default_rng(0).integers(0, 2**16, (8, 8)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    got = make_source(f"folder:{tmp_path}", 8, 1).get(np.arange(1))["image"][0, ..., 0]
    np.testing.assert_array_equal(got, (values >> 8).astype(np.uint8))


def test_folder_bad_files_are_named(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "garbage.jpg").write_bytes(b"definitely not a jpeg")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(DataError) as info:
        make_source(f"folder:{tmp_path}", 8, 3)
    message = str(info.value)
    assert message.startswith("2 unreadable image(s)") and "garbage.jpg" in message and "truncated.png" in message
    assert "good.png" not in message and "\n" not in message


def test_folder_empty_or_missing(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no image files"):
        make_source(f"folder:{tmp_path}", 8, 3)
    with pytest.raises(DataError, match="does not exist"):
        make_source(f"folder:{tmp_path / 'missing'}", 8, 3)


# ------------------------------------------------------------------------------ batch_indices


def stream(seed: int, num_examples: int, length: int) -> np.ndarray:
    """The first `length` positions of the epoch-concatenated index stream."""
    epochs = -(-length // num_examples)
    return np.concatenate([np.random.default_rng([seed, e]).permutation(num_examples) for e in range(epochs)])[:length]


def test_batch_indices_follow_the_epoch_stream():
    num_examples, batch_size, n_critic, steps = 10, 4, 3, 7  # 84 positions = 8.4 epochs, crossing boundaries
    got = np.stack([batch_indices(5, s, num_examples, batch_size, n_critic) for s in range(steps)])
    assert got.shape == (steps, n_critic, batch_size) and got.dtype == np.int64
    np.testing.assert_array_equal(got.reshape(-1), stream(5, num_examples, steps * n_critic * batch_size))
    for epoch in range(8):
        assert sorted(got.reshape(-1)[epoch * 10:(epoch + 1) * 10]) == list(range(10))


def test_batch_indices_deterministic_and_resumable():
    sequence = [batch_indices(1, s, 1000, 64, 2) for s in range(40)]
    epoch_permutation.cache_clear()
    np.testing.assert_array_equal(batch_indices(1, 37, 1000, 64, 2), sequence[37])
    assert not np.array_equal(batch_indices(2, 37, 1000, 64, 2), sequence[37])
    assert not np.array_equal(sequence[0], sequence[1])


def test_batch_indices_process_sharding():
    full = batch_indices(3, 11, 50, 12, 2)
    shards = [batch_indices(3, 11, 50, 12, 2, process_index=p, process_count=3) for p in range(3)]
    assert all(shard.shape == (2, 4) for shard in shards)
    np.testing.assert_array_equal(np.concatenate(shards, axis=1), full)
    with pytest.raises(ValueError, match="not divisible by process_count 5"):
        batch_indices(3, 11, 50, 12, process_count=5)
    with pytest.raises(ValueError, match="process_index"):
        batch_indices(3, 11, 50, 12, process_index=2, process_count=2)


def test_batch_larger_than_data_set_spans_epochs():
    got = batch_indices(0, 1, 3, 8)
    np.testing.assert_array_equal(got[0], stream(0, 3, 16)[8:])


# ------------------------------------------------------------------------------ BatchIterator


@pytest.fixture(scope="module")
def digits():
    return make_source("digits", 8, 1)


def test_batch_iterator_matches_direct_calls(digits):
    with BatchIterator(digits, seed=4, start_step=0, batch_size=16, n_critic=2) as iterator:
        batches = [next(iterator) for _ in range(5)]
    for step, (got_step, batch) in enumerate(batches):
        indices = batch_indices(4, step, digits.num_examples, 16, 2)
        assert got_step == step and batch["image"].shape == (2, 16, 8, 8, 1) and batch["label"].shape == (2, 16)
        np.testing.assert_array_equal(batch["image"], digits.get(indices.reshape(-1))["image"].reshape(2, 16, 8, 8, 1))
        np.testing.assert_array_equal(batch["label"], digits.get(indices.reshape(-1))["label"].reshape(2, 16))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_batch_iterator_resume_equals_skip(digits, prefetch):
    full = BatchIterator(digits, 9, 0, 30, process_index=1, process_count=2, prefetch=prefetch)
    skipped = [next(full) for _ in range(6)][3:]
    full.close()
    resumed = BatchIterator(digits, 9, 3, 30, process_index=1, process_count=2, prefetch=prefetch)
    for (step_a, a), (step_b, b) in zip(skipped, [next(resumed) for _ in range(3)]):
        assert step_a == step_b and a["image"].shape == (1, 15, 8, 8, 1)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    resumed.close()
    with pytest.raises(StopIteration):
        next(resumed)


# ---------------------------------------------------------------- worker processes, image cache


def decoding_source(records=None):
    """A source that decodes and resizes in `get`: a TfdsSource over 40 in-memory 20x20 records."""
    from gan_jax.data.sources import TfdsSource

    rng = np.random.default_rng(0)
    records = records or [{"image": rng.integers(0, 256, (20, 20, 1), dtype=np.uint8),
                           "label": i % 10} for i in range(40)]
    return TfdsSource("records", records, 16, 3, num_classes=10)


def test_batch_iterator_in_worker_processes_equals_one_thread():
    source = decoding_source()
    with BatchIterator(source, 5, 3, 12, n_critic=2, workers=1) as one:
        expected = [next(one) for _ in range(5)]
    with BatchIterator(source, 5, 3, 12, n_critic=2, workers=2) as two:
        got = [next(two) for _ in range(5)]
    for (step_a, a), (step_b, b) in zip(expected, got, strict=True):
        assert step_a == step_b and a["image"].shape == (2, 12, 16, 16, 3)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_a_worker_process_that_dies_is_one_data_error():
    # Reading record `dies` kills the worker process (os._exit, as a crashing decoder would);
    # stdlib objects only, so the workers need not import this test module.
    dies = int(batch_indices(0, 0, 40, 8)[0, 0])  # in step 0's batch
    records = collections.defaultdict(functools.partial(os._exit, 3),
                                      enumerate(decoding_source()._data_source))
    records[40] = records.pop(dies)  # 40 records, record `dies` missing
    source = decoding_source(records)
    with BatchIterator(source, 0, 0, 8, workers=2) as batches:
        with pytest.raises(DataError, match=r"^a data worker process died while loading batches "
                                            r"\(at step 0\) .*--config\.data\.workers=1"):
            next(batches)


def test_worker_processes_leave_ctrl_c_and_sigterm_to_the_parent():
    """A Ctrl-C reaches the whole process group: a worker killed by it would turn the parent's
    graceful stop (checkpoint, exit 0) into a 'worker died' error."""
    import signal

    from gan_jax.data.workers import process_pool

    with process_pool(1) as pool:
        assert [pool.submit(signal.getsignal, s).result() for s in (signal.SIGINT, signal.SIGTERM)
                ] == [signal.SIG_IGN, signal.SIG_IGN]


def random_jpegs(folder, num: int, size: int = 12):
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(num):
        Image.fromarray(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)).save(
            folder / f"{i:03d}.jpg")


def test_folder_decoded_in_processes_equals_one_process(tmp_path):
    from gan_jax.data import sources

    random_jpegs(tmp_path / "jpegs", sources.FILES_PER_WORKER + 1)  # enough for two processes
    one = make_source(f"folder:{tmp_path / 'jpegs'}", 8, 3, workers=1, cache="off")
    two = make_source(f"folder:{tmp_path / 'jpegs'}", 8, 3, workers=2, cache="off")
    np.testing.assert_array_equal(one.images, two.images)


def test_folder_cache_is_read_without_decoding_and_rebuilt_when_an_image_changes(
        tmp_path, monkeypatch):
    from gan_jax.data import sources

    random_jpegs(tmp_path / "jpegs", 3)
    spec, cache = f"folder:{tmp_path / 'jpegs'}", tmp_path / "cache"
    decoded = []
    decode = sources.decode_folder
    monkeypatch.setattr(sources, "decode_folder", lambda *a: decoded.append(a) or decode(*a))
    first = make_source(spec, 8, 3, cache=str(cache))
    assert len(decoded) == 1 and [p.suffix for p in cache.iterdir()] == [".npy"]
    second = make_source(spec, 8, 3, cache=str(cache))
    assert len(decoded) == 1 and isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.images, make_source(spec, 8, 3, cache="off").images)
    assert len(decoded) == 2  # 'off' decodes and writes nothing
    assert len(list(cache.iterdir())) == 1
    assert make_source(spec, 16, 3, cache=str(cache)).image_shape == (16, 16, 3)  # its own file
    assert len(decoded) == 3 and len(list(cache.iterdir())) == 2

    Image.new("RGB", (12, 16), (7, 7, 7)).save(tmp_path / "jpegs" / "001.jpg")
    changed = make_source(spec, 8, 3, cache=str(cache))
    assert len(decoded) == 4 and len(list(cache.iterdir())) == 3
    assert np.abs(changed.images[1].astype(int) - 7).max() <= 2
    np.testing.assert_array_equal(changed.images[[0, 2]], first.images[[0, 2]])


def test_an_unwritable_image_cache_warns_in_one_line_and_the_images_still_load(tmp_path):
    random_jpegs(tmp_path / "jpegs", 2)
    (tmp_path / "file").write_text("not a folder")
    with pytest.warns(UserWarning, match=r"^decoded images not cached in .*/file \(File exists\); "
                                         r"set data\.cache to a writable folder or 'off'$"):
        source = make_source(f"folder:{tmp_path / 'jpegs'}", 8, 3, cache=str(tmp_path / "file"))
    np.testing.assert_array_equal(
        source.images, make_source(f"folder:{tmp_path / 'jpegs'}", 8, 3, cache="off").images)


# ------------------------------------------------------------------------------ train_fraction


def test_subset_keeps_a_fixed_share_of_each_class():
    from gan_jax.data.sources import subset_indices, subset_source

    labels = np.repeat(np.arange(3), [10, 20, 1]).astype(np.int32)
    keep = subset_indices(labels, 31, 0.1, seed=5)
    assert np.bincount(labels[keep]).tolist() == [1, 2, 1]  # round(1), round(2), at least 1
    np.testing.assert_array_equal(keep, subset_indices(labels, 31, 0.1, seed=5))
    assert not np.array_equal(keep, subset_indices(labels, 31, 0.1, seed=6))
    assert len(subset_indices(None, 31, 0.5, seed=0)) == 16

    digits = make_source("digits", 8, 1)
    subset = subset_source(digits, 0.1, 5)
    per_class = [max(1, round(0.1 * n)) for n in np.bincount(digits.labels)]
    assert subset.num_examples == sum(per_class) and subset.num_classes == 10
    assert np.bincount(subset.labels).tolist() == per_class
    assert subset.name == "digits[train_fraction=0.1,subset_seed=5]"
    keep = subset_indices(digits.labels, digits.num_examples, 0.1, 5)
    np.testing.assert_array_equal(subset.images, digits.images[keep])
    assert subset_source(digits, 1.0, 5) is digits


def test_run_trains_on_the_fraction_and_evaluates_against_all(tiny_config):
    from gan_jax.config import ConfigError
    from gan_jax.run import build_run

    tiny_config.data.train_fraction = 0.01
    source = build_run(tiny_config).data_source()
    assert np.bincount(source.labels).tolist() == [2] * 10  # round(1% of about 180) per class
    tiny_config.data.train_fraction = 0.0
    with pytest.raises(ConfigError, match=r"^config.data.train_fraction: must be in \(0, 1\]$"):
        build_run(tiny_config)


def test_digits_train_and_test_are_the_classifiers_hold_out_parts():
    from gan_jax.data.sources import holdout_split

    every = make_source("digits", 8, 1)
    for split, part in (("train", 0), ("test", 1)):
        source = make_source(f"digits:{split}", 8, 1)
        keep = holdout_split(1797)[part]
        assert source.name == f"digits:{split}" and source.num_examples == len(keep)
        np.testing.assert_array_equal(source.images, every.images[keep])
        np.testing.assert_array_equal(source.labels, every.labels[keep])
    with pytest.raises(DataError, match="^unknown digits split in 'digits:x'; use 'digits', 'digits:train'"):
        make_source("digits:x", 8, 1)
