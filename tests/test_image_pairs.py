"""Tests for gan_jax.data.image_pairs: paired/unpaired sources, Fashion-MNIST recipes, paired crop/flip."""

from __future__ import annotations

import gzip

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax.data.image_pairs import (
    PAIR_SOURCES,
    crop_flip,
    crop_flip_params,
    make_pair_source,
    paired_crop_flip,
    sneakers_boots_indices,
    sobel_edges,
)
from gan_jax.data.sources import DataError, make_source, prepare_image


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def noise(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------------------------ registry


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown image-to-image data set 'nope:x'; known names: "
                                        + ", ".join(PAIR_SOURCES)) as info:
        make_pair_source("nope:x", 32, 3)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec, resolution, channels, message", [
    ("edges2fashion:x", 32, 1, "'edges2fashion' takes no argument, got 'edges2fashion:x'"),
    ("edges2fashion", 28, 1, "edges2fashion is 32x32, got resolution 28; set it to 32"),
    ("pairs", 8, 3, "'pairs' needs a path; use 'pairs:/path/to/folder'"),
    ("pairs:x", 8, 2, "channels must be 1 or 3, got 2"),
    ("tfds", 8, 3, "'tfds' needs a data set name; use e.g. 'tfds:cycle_gan/horse2zebra'"),
    ("pairs:x", 0, 3, "resolution must be a positive integer, got 0"),
])
def test_bad_specs_one_line(spec, resolution, channels, message):
    with pytest.raises(DataError) as info:
        make_pair_source(spec, resolution, channels)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------ paired folders


def test_aligned_pairs_split_left_a_right_b(tmp_path):
    images = {name: noise(i, (8, 16, 3)) for i, name in enumerate(["b", "a", "sub/c"])}
    for name, image in images.items():
        save(tmp_path / "train" / f"{name}.png", image)
    source = make_pair_source(f"pairs:{tmp_path}", 8, 3, split="train")
    batch = source.get(np.array([2, 0]))
    assert source.num_examples == 3 and source.image_shape == (8, 8, 3) and source.paired
    np.testing.assert_array_equal(batch["a"], [images["sub/c"][:, :8], images["a"][:, :8]])
    np.testing.assert_array_equal(batch["b"], [images["sub/c"][:, 8:], images["a"][:, 8:]])


def test_aligned_pairs_resized_and_gray(tmp_path):
    image = noise(0, (16, 32, 3))
    save(tmp_path / "x.png", image)
    source = make_pair_source(f"pairs:{tmp_path}", 4, 1)
    np.testing.assert_array_equal(source.a[0], prepare_image(image[:, :16], 4, 1))
    np.testing.assert_array_equal(source.b[0], prepare_image(image[:, 16:], 4, 1))


def test_aligned_pairs_odd_width_refused_named(tmp_path):
    save(tmp_path / "good.png", noise(0, (8, 16, 3)))
    save(tmp_path / "bad.png", noise(1, (8, 15, 3)))
    with pytest.raises(DataError) as info:
        make_pair_source(f"pairs:{tmp_path}", 8, 3)
    assert str(info.value) == (f"1 image(s) in {tmp_path} have an odd width, so they cannot be split into "
                               "A|B halves: bad.png; crop them to an even width")


def test_aligned_pairs_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match=f"image folder {tmp_path / 'test'} does not exist"):
        make_pair_source(f"pairs:{tmp_path}", 8, 3, split="test")
    with pytest.raises(DataError, match=f"no image files .* under {tmp_path};"):
        make_pair_source(f"pairs:{tmp_path}", 8, 3)


def test_aligned_pairs_unreadable_file_named(tmp_path):
    save(tmp_path / "ok.png", noise(0, (8, 16, 3)))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"^1 unreadable image\\(s\\) in {tmp_path}: broken.png; remove"):
        make_pair_source(f"pairs:{tmp_path}", 8, 3)


def test_ab_folders_matched_by_name(tmp_path):
    a = {"x": noise(0, (8, 8, 3)), "y": noise(1, (8, 8, 3))}
    b = {"x": noise(2, (8, 8, 3)), "y": noise(3, (8, 8, 3))}
    save(tmp_path / "A" / "y.png", a["y"])
    save(tmp_path / "A" / "x.bmp", a["x"])
    save(tmp_path / "B" / "x.png", b["x"])
    save(tmp_path / "B" / "y.bmp", b["y"])
    source = make_pair_source(f"pairs_ab:{tmp_path}", 8, 3)
    batch = source.get(np.arange(2))
    np.testing.assert_array_equal(batch["a"], [a["x"], a["y"]])
    np.testing.assert_array_equal(batch["b"], [b["x"], b["y"]])


def test_ab_folders_unmatched_names_listed(tmp_path):
    for name in ["both", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]:
        save(tmp_path / "A" / f"{name}.png", noise(0, (4, 4, 3)))
    for name in ["both", "b1"]:
        save(tmp_path / "B" / f"{name}.png", noise(0, (4, 4, 3)))
    with pytest.raises(DataError) as info:
        make_pair_source(f"pairs_ab:{tmp_path}", 4, 3)
    assert str(info.value) == (f"unmatched image names in {tmp_path}: 7 only in A/ (a1, a2, a3, a4, a5 and 2 "
                               "more); 1 only in B/ (b1); every A/ image needs a B/ image with the same name")


def test_ab_folders_duplicate_names_refused(tmp_path):
    save(tmp_path / "A" / "x.png", noise(0, (4, 4, 3)))
    save(tmp_path / "A" / "x.bmp", noise(0, (4, 4, 3)))
    with pytest.raises(DataError, match=f"^{tmp_path / 'A'} has two images named 'x' \\(x.bmp, x.png\\); keep"):
        make_pair_source(f"pairs_ab:{tmp_path}", 4, 3)


# ------------------------------------------------------------------------------------ unpaired


def test_unpaired_folders_independent_lengths(tmp_path):
    a = [noise(i, (8, 8, 3)) for i in range(3)]
    b = [noise(10 + i, (8, 8, 1))[..., 0] for i in range(2)]
    for i, image in enumerate(a):
        save(tmp_path / "trainA" / f"{i}.png", image)
    for i, image in enumerate(b):
        save(tmp_path / "trainB" / f"{i}.png", image)
    source = make_pair_source(f"unpaired:{tmp_path}", 8, 3)
    assert not source.paired and (source.a.num_examples, source.b.num_examples) == (3, 2)
    np.testing.assert_array_equal(source.a.get(np.array([2]))["image"], [a[2]])
    np.testing.assert_array_equal(source.b.get(np.array([1]))["image"], [np.repeat(b[1][..., None], 3, -1)])
    with pytest.raises(DataError, match=f"image folder {tmp_path / 'testA'} does not exist"):
        make_pair_source(f"unpaired:{tmp_path}", 8, 3, split="test")


def test_tfds_cycle_gan_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        source = make_pair_source("tfds:cycle_gan/horse2zebra", 16, 3, split="test")
        raw = tfds.data_source("cycle_gan/horse2zebra", split="testB")
        batch = source.b.get(np.array([2, 0]))
    assert source.name == "tfds:cycle_gan/horse2zebra:test" and not source.paired
    assert (source.a.name, source.b.name) == ("tfds:cycle_gan/horse2zebra:testA", "tfds:cycle_gan/horse2zebra:testB")
    assert source.a.num_examples == source.b.num_examples == 3
    np.testing.assert_array_equal(batch["image"], [prepare_image(np.asarray(raw[i]["image"]), 16, 3) for i in (2, 0)])


# ----------------------------------------------------------------------------- fashion recipes


def test_sobel_edges_of_a_square_is_its_outline():
    image = np.zeros((1, 32, 32), np.uint8)
    image[0, 8:16, 10:20] = 200  # rows 8..15, cols 10..19
    expected = np.full((32, 32), 255, np.uint8)
    expected[7:17, 9:21] = 0  # every pixel whose 3x3 neighbourhood meets the square's boundary ...
    expected[9:15, 11:19] = 255  # ... but not the interior two pixels in from it
    np.testing.assert_array_equal(sobel_edges(image)[0], expected)


def test_sobel_edges_flat_and_weak_steps_are_blank():
    flat = np.full((1, 8, 8), 77, np.uint8)
    weak = np.zeros((1, 8, 8), np.uint8)
    weak[:, :, 4:] = 31  # Sobel magnitude 4 * 31/255 = 0.486 <= 0.5
    assert (sobel_edges(flat) == 255).all() and (sobel_edges(weak) == 255).all()
    weak[:, :, 4:] = 32  # 0.502 > 0.5
    assert (sobel_edges(weak)[0] == 0).sum() == 2 * 8


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.tobytes()


TRAIN_LABELS = np.array([7, 9, 9, 7, 7, 9, 0], np.uint8)
TEST_LABELS = np.array([9, 7, 3, 7], np.uint8)


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    images = {}
    for prefix, labels in (("train", TRAIN_LABELS), ("t10k", TEST_LABELS)):
        images[prefix] = noise(len(labels), (len(labels), 28, 28))
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images[prefix])))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    monkeypatch.setenv("GAN_JAX_FASHION_MNIST_DIR", str(tmp_path))
    return images


def test_sneakers_boots_from_disjoint_halves():
    labels = np.array([7, 9, 9, 7, 7, 9, 0, 9, 7, 7])
    a, b = sneakers_boots_indices(labels, "train")
    assert a.tolist() == [0, 4, 8] and b.tolist() == [1, 5, 7]
    assert set(a % 2) == {0} and set(b % 2) == {1} and not set(a) & set(b)
    a, b = sneakers_boots_indices(labels, "test")
    assert a.tolist() == [0, 3, 4, 8, 9] and b.tolist() == [1, 2, 5, 7]


@pytest.mark.parametrize("split, a_index, b_index", [(None, [0, 4], [1, 5]), ("test", [1, 3], [0])])
def test_fashion_sneakers2boots(fake_fashion, split, a_index, b_index):
    source = make_pair_source("fashion_sneakers2boots", 32, 3, split=split)
    full = make_source(f"fashion_mnist:{split or 'train'}", 32, 3)
    assert not source.paired and (source.a.num_examples, source.b.num_examples) == (len(a_index), len(b_index))
    np.testing.assert_array_equal(source.a.get(np.arange(len(a_index)))["image"], full.images[a_index])
    np.testing.assert_array_equal(source.b.get(np.arange(len(b_index)))["image"], full.images[b_index])


@pytest.mark.parametrize("channels", [1, 3])
def test_edges2fashion(fake_fashion, channels):
    source = make_pair_source("edges2fashion", 32, channels, split="test")
    gray = make_source("fashion_mnist:test", 32, 1).images
    assert source.paired and source.num_examples == 4 and source.image_shape == (32, 32, channels)
    np.testing.assert_array_equal(source.b, np.repeat(gray, channels, -1))
    np.testing.assert_array_equal(source.a, np.repeat(sobel_edges(gray[..., 0])[..., None], channels, -1))


def test_fashion_recipes_missing_data_name_the_apt_package(tmp_path):
    for spec in ("edges2fashion", "fashion_sneakers2boots"):
        with pytest.raises(DataError, match="run 'apt-get install dataset-fashion-mnist'") as info:
            make_pair_source(spec, 32, 1, data_dir=str(tmp_path))
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="unknown split 'val' for the Fashion-MNIST recipes; use train or test"):
        make_pair_source("edges2fashion", 32, 1, split="val", data_dir=str(tmp_path))


# ---------------------------------------------------------------------------- paired crop/flip


def crop_and_params(a, b, keys, crop_size):
    """paired_crop_flip's outputs and every example's (top, left, flip), from one compiled call."""
    height, width = a.shape[1:3]
    fn = jax.jit(lambda a, b, keys: (paired_crop_flip(a, b, keys, crop_size),
                                     jax.vmap(lambda k: crop_flip_params(k, height, width, crop_size))(keys)))
    (out_a, out_b), params = fn(a, b, keys)
    return np.asarray(out_a), np.asarray(out_b), np.stack(params, 1).tolist()


def test_paired_crop_flip_equals_slicing_at_the_drawn_offset():
    a = np.arange(3 * 6 * 5 * 2, dtype=np.float32).reshape(3, 6, 5, 2)
    b = (np.arange(3 * 6 * 5, dtype=np.int32).reshape(3, 6, 5, 1) * 7).astype(np.uint8)
    keys = jax.random.split(jax.random.key(0), 3)
    out_a, out_b, params = crop_and_params(a, b, keys, 3)
    assert out_a.shape == (3, 3, 3, 2) and out_b.shape == (3, 3, 3, 1) and out_b.dtype == np.uint8
    for i, (top, left, flip) in enumerate(params):
        for x, out in ((a, out_a), (b, out_b)):
            expected = x[i, top:top + 3, left:left + 3]
            np.testing.assert_array_equal(out[i], expected[:, ::-1] if flip else expected)


def test_paired_crop_flip_keeps_a_and_b_aligned_over_many_keys():
    a = np.random.default_rng(0).integers(0, 250, (64, 8, 8, 3), dtype=np.uint8)
    keys = jax.random.split(jax.random.key(1), 64)
    out_a, out_b, params = crop_and_params(a, a + 1, keys, 5)
    np.testing.assert_array_equal(out_b, out_a + 1)
    assert {p[0] for p in params} == {p[1] for p in params} == {0, 1, 2, 3} and {p[2] for p in params} == {0, 1}


def test_crop_flip_without_flip_crops_at_the_drawn_offsets_only():
    a = np.arange(3 * 6 * 5 * 2, dtype=np.float32).reshape(3, 6, 5, 2)
    keys = jax.random.split(jax.random.key(0), 3)
    _, _, params = crop_and_params(a, a, keys, 3)
    assert {p[2] for p in params} == {0, 1}
    (out,) = jax.jit(lambda x, k: crop_flip((x,), k, 3, flip=False))(a, keys)
    for i, (top, left, _) in enumerate(params):
        np.testing.assert_array_equal(out[i], a[i, top:top + 3, left:left + 3])
    square = a[:, :5]
    assert crop_flip((square,), keys, 5, flip=False)[0] is square  # no crop, no flip: untouched


def test_paired_crop_flip_bad_shapes():
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(DataError, match=r"crop_size 9 does not fit images of 8x8"):
        paired_crop_flip(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 3)), keys, 9)
    with pytest.raises(DataError, match=r"paired batches differ in \(batch, height, width\)"):
        paired_crop_flip(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 6, 1)), keys, 4)
