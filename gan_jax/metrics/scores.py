"""Sample-quality scores on feature arrays: FID, KID, Inception Score, precision and recall.

Every function takes NumPy-convertible arrays of shape (num_samples, feature_dim) (logits of
shape (num_samples, num_classes) for the Inception Score), computes in float64 and returns Python
floats. Bad input (wrong ndim, NaN/inf, too few samples, mismatched dimensions) raises
`MetricError`, whose message is one line naming the problem and the fix.

Definitions (x: real features, y: generated features):

* FID, Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
  Rule Converge to a Local Nash Equilibrium"): the Frechet distance between Gaussians fitted to the
  two sets, ||mu_x - mu_y||^2 + tr(S_x) + tr(S_y) - 2 tr((S_x S_y)^{1/2}), with the sample mean and
  unbiased covariance. tr((S_x S_y)^{1/2}) equals the sum of the square roots of the eigenvalues of
  the symmetric PSD matrix S_x^{1/2} S_y S_x^{1/2}; it is computed from two symmetric
  eigendecompositions (negative rounding-noise eigenvalues clipped to 0), which stays stable for
  singular covariances (fewer samples than feature dimensions), where a general sqrtm does not.
* KID, Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
  estimator of the squared MMD with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3,
      MMD^2 = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
              - 2 sum_{i,j} k(x_i, y_j) / m^2,
  averaged over `num_subsets` random subsets of m = min(subset_size, |x|, |y|) samples per set
  (drawn without replacement within a subset); returns the mean and the (population) std over
  subsets. It is unbiased, so it can be slightly negative when the distributions match.
* IS, Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs"):
  exp(E_x KL(p(y|x) || p(y))) with p(y) the mean prediction, computed on each of `splits`
  consecutive chunks (chunk i holds rows [i N // splits, (i+1) N // splits)); returns the mean and
  (population) std over chunks, as in the original TF code and torch-fidelity.
* Precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"): each real sample gets the radius of the distance to its k-th
  nearest other real sample; precision is the fraction of generated samples inside (<=) the radius
  of at least one real sample. Recall is the same with the roles swapped: generated radii, the
  fraction of real samples covered.

Pairwise distances (precision/recall) are squared Euclidean distances ||a||^2 + ||b||^2 - 2 a.b in
float64, computed one block of rows at a time so no block exceeds `_BLOCK_BYTES` (the full N x N
matrix never exists); both feature sets are held once as float64 (50k x 2048 is 0.8 GB each).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MetricError", "feature_statistics", "frechet_distance", "fid", "fid_from_stats",
           "kid", "inception_score", "precision_recall"]

_BLOCK_BYTES = 128 * 2**20  # float64 bytes of one block of pairwise distances


class MetricError(ValueError):
    """Input a score cannot be computed from; the message is one line: the problem and the fix."""


def _features(x: np.ndarray, name: str, min_samples: int, why: str,
              fix: str = "generate or load more samples") -> np.ndarray:
    """`x` as a finite float64 (N, D) array with N >= min_samples, else MetricError."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise MetricError(f"{name} must be a numeric array, got {type(x).__name__} ({e}); "
                          f"pass a (num_samples, dim) float array") from None
    if x.ndim != 2:
        raise MetricError(f"{name} must be 2-D (num_samples, dim), got shape {x.shape}; "
                          f"flatten or reshape the features to (num_samples, dim)")
    if x.shape[1] < 1:
        raise MetricError(f"{name} has no feature columns (shape {x.shape}); "
                          f"pass features with dim >= 1")
    if x.shape[0] < min_samples:
        raise MetricError(f"{why} needs at least {min_samples} samples in {name}, got "
                          f"{x.shape[0]}; {fix}")
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise MetricError(f"{name} has {int(bad.sum())} non-finite values (NaN/inf), first in "
                          f"row {row}; check the generator output and the feature extractor")
    return x


def _same_dim(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise MetricError(f"{what} needs features of one dimension, got {a.shape[1]} (real) and "
                          f"{b.shape[1]} (fake); extract both sets with the same feature extractor")


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2.

    Same values as `np.mean(x, 0)` and `np.cov(x, rowvar=False)`, but always 2-D (also for D=1).
    """
    x = _features(features, "features", 2, "a covariance")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; negative eigenvalues are clipped to 0."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); see the module docstring.

    Covariances are symmetrised ((S + S^T) / 2) before use; a result below 0 from rounding is
    returned as 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    for name, mu, sigma in (("1", mu1, sigma1), ("2", mu2, sigma2)):
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise MetricError(f"Frechet distance needs mu{name} of shape (D,) and sigma{name} of "
                              f"shape (D, D), got {mu.shape} and {sigma.shape}; pass the output "
                              f"of feature_statistics")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise MetricError(f"mu{name}/sigma{name} contain NaN or inf; recompute the statistics "
                              f"from finite features")
    if mu1.shape != mu2.shape:
        raise MetricError(f"Frechet distance needs statistics of one dimension, got {mu1.shape[0]} "
                          f"and {mu2.shape[0]}; compute both with the same feature extractor")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return max(float(value), 0.0)


def fid_from_stats(real_stats: tuple[np.ndarray, np.ndarray],
                   fake_stats: tuple[np.ndarray, np.ndarray]) -> float:
    """FID from two (mu, sigma) pairs, e.g. precomputed statistics of the real set."""
    return frechet_distance(real_stats[0], real_stats[1], fake_stats[0], fake_stats[1])


def fid(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D), each with at least 2 samples."""
    real = _features(real_features, "real_features", 2, "FID")
    fake = _features(fake_features, "fake_features", 2, "FID")
    _same_dim(real, fake, "FID")
    return fid_from_stats(feature_statistics(real), feature_statistics(fake))


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) of feature sets (N, D) and (M, D); see the module docstring.

    Subsets are drawn from `np.random.default_rng(seed)`: per subset, m real rows then m fake rows,
    each without replacement, so the result is deterministic given the seed.
    """
    x = _features(real, "real", 2, "KID")
    y = _features(fake, "fake", 2, "KID")
    _same_dim(x, y, "KID")
    if num_subsets < 1 or subset_size < 2:
        raise MetricError(f"KID needs num_subsets >= 1 and subset_size >= 2, got {num_subsets} and "
                          f"{subset_size}; raise them")
    m = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for s in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        k_xx, k_yy = _polynomial_kernel(xs, xs), _polynomial_kernel(ys, ys)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[s] = within - 2.0 * _polynomial_kernel(xs, ys).mean()
    return float(estimates.mean()), float(estimates.std())


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score (mean, std over `splits` chunks) of classifier logits (N, K), N >= splits.

    Works on log-probabilities throughout (log-softmax, log of the mean prediction by logsumexp),
    so confident logits never produce log(0).
    """
    if splits < 1:
        raise MetricError(f"the Inception Score needs splits >= 1, got {splits}; pass splits=10")
    z = _features(logits, "logits", splits, f"the Inception Score with splits={splits}",
                  "generate more samples or pass fewer splits")
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = log_p.shape[0]
    scores = np.empty(splits)
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        top = part.max(axis=0)
        log_py = top + np.log(np.exp(part - top).mean(axis=0))
        kl = (np.exp(part) * (part - log_py)).sum(axis=1)
        scores[i] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())


def _block_rows(num_columns: int) -> int:
    """Rows per block so that one block of float64 distances to `num_columns` points fits."""
    return max(1, _BLOCK_BYTES // (8 * num_columns))


def _squared_distances(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray,
                       b_sq: np.ndarray) -> np.ndarray:
    """||a_i - b_j||^2 as ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j, in place in one (len(a), len(b)) array,
    clipped at 0 (exact for small integer coordinates, else off by ~1e-16 ||a|| ||b||)."""
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def _knn_radii_sq(x: np.ndarray, x_sq: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each row of x to its k-th nearest other row."""
    n = x.shape[0]
    radii = np.empty(n)
    step = _block_rows(n)
    for start in range(0, n, step):
        d = _squared_distances(x[start:start + step], x_sq[start:start + step], x, x_sq)
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # exclude the point itself exactly
        radii[start:start + step] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def _coverage(manifold: np.ndarray, manifold_sq: np.ndarray, radii_sq: np.ndarray,
              queries: np.ndarray) -> float:
    """Fraction of queries within (<=) the k-NN radius of at least one manifold point."""
    queries_sq = (queries * queries).sum(axis=1)
    inside = 0
    step = _block_rows(manifold.shape[0])
    for start in range(0, queries.shape[0], step):
        d = _squared_distances(queries[start:start + step], queries_sq[start:start + step],
                               manifold, manifold_sq)
        inside += int((d <= radii_sq[None, :]).any(axis=1).sum())
    return inside / queries.shape[0]


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds) of fake features (M, D) against real (N, D).

    Both sets need more than k samples. Distances are float64; see the module docstring for the
    definition and the memory used.
    """
    if k < 1:
        raise MetricError(f"precision/recall needs k >= 1 nearest neighbours, got {k}; pass k=3")
    why, fix = f"precision/recall with k={k}", "generate more samples or pass a smaller k"
    x = _features(real, "real", k + 1, why, fix)
    y = _features(fake, "fake", k + 1, why, fix)
    _same_dim(x, y, "precision/recall")
    x_sq, y_sq = (x * x).sum(axis=1), (y * y).sum(axis=1)
    precision = _coverage(x, x_sq, _knn_radii_sq(x, x_sq, k), y)
    recall = _coverage(y, y_sq, _knn_radii_sq(y, y_sq, k), x)
    return precision, recall
