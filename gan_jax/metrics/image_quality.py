"""Paired image-to-image scores: L1, PSNR and SSIM of outputs against their targets.

Every function takes two uint8 arrays of the same shape (N, H, W, C), outputs and targets, computes
in float64 NumPy and returns one score per image (N,):

* L1: mean |x - y| / 255, i.e. on the [0, 1] scale (0: identical, 1: black vs white).
* PSNR: 10 log10(255^2 / MSE) in dB, MSE the mean of (x - y)^2 over the image's n pixel values
  (pixels x channels): scikit-image's `peak_signal_noise_ratio(data_range=255)` for every pair
  that differs. Identical images score 10 log10(255^2 n), the PSNR of the smallest error n uint8
  values can show (one level at one value), instead of inf, so means over images stay finite.
* SSIM: Wang et al. 2004's structural similarity with their settings (11x11 Gaussian window of
  sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, population (co)variances), averaged over the pixels
  whose window lies inside the image and over channels. Equals scikit-image's
  `structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255, channel_axis=-1)` (tested); images must be at least 11 px on each side.

`image_quality` gives the means over images as floats. The PSNR of a set is the mean of its
per-image PSNRs, as open-mmlab/mmagic `mmagic/evaluation/metrics/psnr.py` (per image) with
`metrics_utils.average` (mean over images), so scores sit beside mmagic's published tables;
mmagic's per-image value is inf for an identical pair, which makes its mean inf (named deviation:
our cap above). torchmetrics' `PeakSignalNoiseRatio` (`src/torchmetrics/image/psnr.py`, dim=None)
pools instead: the PSNR of the summed squared error over all images, a different number.
"""

from __future__ import annotations

import numpy as np

SIGMA = 1.5
RADIUS = 5  # int(3.5 * sigma + 0.5): scipy's Gaussian truncated at 3.5 sigma -> an 11-tap window
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
_CHUNK = 64  # images per SSIM pass: bounds the float64 temporaries


def _check(images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays as uint8 NumPy arrays of one (N, H, W, C) shape; ValueError otherwise."""
    images, targets = np.asarray(images), np.asarray(targets)
    for name, a in (("images", images), ("targets", targets)):
        if a.dtype != np.uint8 or a.ndim != 4:
            raise ValueError(f"{name} must be uint8 (N, H, W, C), got {a.dtype} of shape "
                             f"{a.shape}")
    if images.shape != targets.shape:
        raise ValueError(f"images {images.shape} and targets {targets.shape} differ in shape")
    return images, targets


def l1(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-image mean absolute error on the [0, 1] scale, (N,) float64."""
    images, targets = _check(images, targets)
    diff = np.abs(images.astype(np.float64) - targets.astype(np.float64))
    return diff.mean(axis=(1, 2, 3)) / DATA_RANGE


def psnr(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-image peak signal-to-noise ratio in dB for data range 255, (N,) float64; an image
    equal to its target scores `psnr_of_mse`'s cap."""
    images, targets = _check(images, targets)
    mse = ((images.astype(np.float64) - targets.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return psnr_of_mse(mse, np.full(len(mse), np.prod(images.shape[1:])))


def psnr_of_mse(mse: np.ndarray, count: np.ndarray) -> np.ndarray:
    """10 log10(255^2 / MSE) in dB of MSEs over `count` uint8 values each; an MSE of 0 scores
    10 log10(255^2 count), the PSNR of an MSE of 1 / count (one level of error at one value)."""
    return 10.0 * np.log10(DATA_RANGE ** 2 / np.maximum(mse, 1.0 / count))


def gaussian_window() -> np.ndarray:
    """The normalised 1-D Gaussian taps (11,) of the SSIM window (sigma 1.5, radius 5)."""
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / SIGMA) ** 2)
    return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable filtering of (N, H, W, C) by w along H and W, where the window fits:
    (N, H - 2r, W - 2r, C)."""
    x = np.lib.stride_tricks.sliding_window_view(x, w.size, axis=1) @ w
    return np.lib.stride_tricks.sliding_window_view(x, w.size, axis=2) @ w


def _ssim_chunk(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _ssim_map(x, y).mean(axis=(1, 2, 3))


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM of every pixel whose window lies inside the image: (N, H - 10, W - 10, C)."""
    w = gaussian_window()
    ux, uy = _filter_valid(x, w), _filter_valid(y, w)
    vx = _filter_valid(x * x, w) - ux * ux
    vy = _filter_valid(y * y, w) - uy * uy
    vxy = _filter_valid(x * y, w) - ux * uy
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004, scikit-image's Gaussian-window settings), (N,) float64."""
    images, targets = _check(images, targets)
    if min(images.shape[1:3]) < 2 * RADIUS + 1:
        raise ValueError(f"SSIM's 11x11 window needs images of at least 11x11 px, got "
                         f"{images.shape[1]}x{images.shape[2]}")
    return np.concatenate([
        _ssim_chunk(images[i:i + _CHUNK].astype(np.float64),
                    targets[i:i + _CHUNK].astype(np.float64))
        for i in range(0, len(images), _CHUNK)] or [np.zeros(0)])


def masked_quality(images: np.ndarray, targets: np.ndarray, masks: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """Per-image {'l1', 'psnr', 'ssim'} (N,) over the pixels where masks (N, H, W, 1) is 1 (the
    hole of an inpainted image): L1 and PSNR over the hole's pixels and channels (an exact hole:
    `psnr_of_mse`'s cap for the hole's values), SSIM the mean
    of the SSIM map over the hole's pixels whose window lies inside the image (NaN if none)."""
    images, targets = _check(images, targets)
    x, y = images.astype(np.float64), targets.astype(np.float64)
    weight = np.broadcast_to(masks.astype(np.float64), x.shape)
    count = weight.sum(axis=(1, 2, 3))
    l1_ = (np.abs(x - y) * weight).sum(axis=(1, 2, 3)) / count / DATA_RANGE
    mse = ((x - y) ** 2 * weight).sum(axis=(1, 2, 3)) / count
    psnr_ = psnr_of_mse(mse, count)
    if min(images.shape[1:3]) < 2 * RADIUS + 1:
        raise ValueError(f"SSIM's 11x11 window needs images of at least 11x11 px, got "
                         f"{images.shape[1]}x{images.shape[2]}")
    inner = weight[:, RADIUS:-RADIUS, RADIUS:-RADIUS]
    with np.errstate(invalid="ignore"):
        ssim_ = (_ssim_map(x, y) * inner).sum(axis=(1, 2, 3)) / inner.sum(axis=(1, 2, 3))
    return {"l1": l1_, "psnr": psnr_, "ssim": ssim_}


def image_quality(images: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """{'l1', 'psnr', 'ssim'}: the means over images of the per-image scores."""
    return {"l1": float(l1(images, targets).mean()), "psnr": float(psnr(images, targets).mean()),
            "ssim": float(ssim(images, targets).mean())}
