"""L1, PSNR and SSIM (gan_jax/metrics/image_quality.py) against scikit-image and by hand."""

import numpy as np
import pytest

from gan_jax.metrics import image_quality as iq

skimage_metrics = pytest.importorskip("skimage.metrics")


def _random_pair(seed, shape):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape, dtype=np.uint8),
            rng.integers(0, 256, shape, dtype=np.uint8))


def _structured_pair(size=48):
    """A smooth gradient with a square, and a blurred, shifted, noisy copy (high SSIM)."""
    yy, xx = np.mgrid[:size, :size]
    base = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).astype(np.float64)
    base[size // 4:size // 2, size // 4:size // 2] = 240
    noise = np.random.default_rng(0).normal(0, 6, base.shape)
    other = np.roll(base, 1, axis=1) * 0.9 + 10 + noise
    return (np.clip(base, 0, 255).astype(np.uint8)[None],
            np.clip(other, 0, 255).astype(np.uint8)[None])


def _cases():
    rand = _random_pair(1, (3, 32, 40, 3))
    gray = _random_pair(2, (2, 11, 17, 1))
    structured = _structured_pair()
    # a random image against a mildly perturbed copy of itself
    a = rand[0]
    b = np.clip(a.astype(int) + np.random.default_rng(3).integers(-20, 21, a.shape), 0, 255)
    return [rand, gray, structured, (a, b.astype(np.uint8))]


@pytest.mark.parametrize("images,targets", _cases())
def test_ssim_equals_scikit_image(images, targets):
    ours = iq.ssim(images, targets)
    theirs = [skimage_metrics.structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=-1) for x, y in zip(images, targets)]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("images,targets", _cases())
def test_psnr_equals_scikit_image(images, targets):
    theirs = [skimage_metrics.peak_signal_noise_ratio(y, x, data_range=255)
              for x, y in zip(images, targets)]
    np.testing.assert_allclose(iq.psnr(images, targets), theirs, rtol=1e-12)


def test_hand_made_values():
    black = np.zeros((1, 12, 12, 3), np.uint8)
    white = np.full((1, 12, 12, 3), 255, np.uint8)
    gray = np.full((1, 12, 12, 3), 51, np.uint8)
    assert iq.l1(black, white).tolist() == [1.0]
    assert iq.l1(black, gray).tolist() == [0.2]
    assert iq.psnr(black, white).tolist() == [0.0]
    np.testing.assert_allclose(iq.psnr(black, gray), 20 * np.log10(5), rtol=1e-14)
    # constant images: SSIM reduces to its luminance term (2ab + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 255) ** 2
    np.testing.assert_allclose(iq.ssim(black, gray), c1 / (51 ** 2 + c1), rtol=1e-14)


def test_identical_images_score_perfectly():
    images, _ = _random_pair(4, (2, 16, 16, 3))
    cap = 10 * np.log10(255 ** 2 * 16 * 16 * 3)  # one level of error at one of 768 values
    assert iq.l1(images, images).tolist() == [0.0, 0.0]
    np.testing.assert_allclose(iq.psnr(images, images), [cap, cap], rtol=1e-15)
    np.testing.assert_allclose(iq.ssim(images, images), 1.0, rtol=0, atol=1e-15)
    assert iq.image_quality(images, images) == {"l1": 0.0, "psnr": pytest.approx(cap, rel=1e-15),
                                                "ssim": pytest.approx(1.0, abs=1e-15)}


def test_psnr_of_a_set_with_an_exact_image_is_the_capped_per_image_mean():
    targets = np.zeros((3, 12, 12, 1), np.uint8)
    images = targets.copy()
    images[0, 0, 0] = 255  # MSE 255^2 / 144: 10 log10(144) dB
    images[1, 5, 7] = 1  # MSE 1 / 144: the smallest error, 10 log10(255^2 144) dB
    # images[2] is exact: scored as the smallest error, not inf
    by_hand = [10 * np.log10(144), 10 * np.log10(255 ** 2 * 144), 10 * np.log10(255 ** 2 * 144)]
    np.testing.assert_allclose(iq.psnr(images, targets), by_hand, rtol=1e-15)
    assert iq.image_quality(images, targets)["psnr"] == pytest.approx(np.mean(by_hand),
                                                                       rel=1e-15)


def test_masked_quality_scores_the_hole_by_hand():
    targets = np.full((2, 12, 12, 1), 100, np.uint8)
    images = targets.copy()
    masks = np.zeros((2, 12, 12, 1), np.uint8)
    masks[:, 0, :3] = 1  # a 3-pixel hole in each image, outside SSIM's inner pixels
    masks[:, 6, 6] = 1  # and one inside them
    images[0, 0, 0] = 150  # a hole error of 50 at one of 4 hole pixels
    images[0, 9, 9] = 0  # known pixels do not count
    images[1, 9, 9] = 0  # image 1's hole is exact
    scores = iq.masked_quality(images, targets, masks)
    np.testing.assert_allclose(scores["l1"], [50 / 4 / 255, 0.0], rtol=1e-15)
    np.testing.assert_allclose(scores["psnr"], [10 * np.log10(255 ** 2 / (50 ** 2 / 4)),
                                                10 * np.log10(255 ** 2 * 4)], rtol=1e-15)
    ssim_map = iq._ssim_map(images.astype(np.float64), targets.astype(np.float64))
    np.testing.assert_allclose(scores["ssim"], ssim_map[:, 1, 1, 0], rtol=1e-15)  # pixel (6, 6)


def test_image_quality_is_the_mean_of_per_image_scores():
    images, targets = _random_pair(5, (130, 12, 12, 1))  # more than one SSIM chunk
    scores = iq.image_quality(images, targets)
    assert scores == {"l1": iq.l1(images, targets).mean(), "psnr": iq.psnr(images, targets).mean(),
                      "ssim": iq.ssim(images, targets).mean()}
    np.testing.assert_array_equal(iq.ssim(images, targets)[64:],
                                  iq.ssim(images[64:], targets[64:]))


def test_bad_input_is_refused_with_one_line():
    good = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"^images must be uint8 \(N, H, W, C\), got float32 of "
                                         r"shape \(1, 16, 16, 3\)$"):
        iq.l1(good.astype(np.float32), good)
    with pytest.raises(ValueError, match=r"^targets must be uint8 \(N, H, W, C\), got uint8 of "
                                         r"shape \(16, 16, 3\)$"):
        iq.psnr(good, good[0])
    with pytest.raises(ValueError, match=r"^images \(1, 16, 16, 3\) and targets \(1, 16, 16, 1\) "
                                         r"differ in shape$"):
        iq.ssim(good, good[..., :1])
    with pytest.raises(ValueError, match=r"^SSIM's 11x11 window needs images of at least 11x11 "
                                         r"px, got 10x16$"):
        iq.ssim(good[:, :10], good[:, :10])
