"""gan_jax.metrics.scores against closed forms, hand-computed cases and independent references
(scipy.linalg.sqrtm, full kernel matrices, scipy softmax/entropy, sklearn nearest neighbours)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from gan_jax.metrics import scores
from gan_jax.metrics.scores import (MetricError, feature_statistics, fid, fid_from_stats,
                                    frechet_distance, inception_score, kid, precision_recall)


def rng(seed=0):
    return np.random.default_rng(seed)


def random_spd(r, d, rank=None):
    a = r.normal(size=(d, rank or d))
    return a @ a.T / d + (0.0 if rank else 0.1 * np.eye(d))


def reference_fd(mu1, s1, mu2, s2):
    """The textbook formula with a general matrix square root (as in pytorch-fid)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.trace(covmean).real)


# --- feature statistics / FID -----------------------------------------------------------------

def test_feature_statistics_match_numpy_and_stay_2d():
    x = rng().normal(size=(50, 6)) * [1, 2, 3, 4, 5, 6]
    mu, sigma = feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-12)
    assert mu.dtype == sigma.dtype == np.float64
    mu1, sigma1 = feature_statistics(np.array([[1.0], [3.0], [8.0]], np.float32))
    assert mu1.shape == (1,) and sigma1.shape == (1, 1)
    np.testing.assert_allclose(sigma1, [[13.0]])  # mean 4, (9 + 1 + 16) / 2


def test_fid_of_identical_sets_is_zero_and_a_shift_adds_its_squared_norm():
    x = rng().normal(size=(300, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.arange(16) / 4.0
    assert fid(x, x + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    r = rng(1)
    mu1, mu2 = r.normal(size=8), r.normal(size=8)
    v1, v2 = r.uniform(0.1, 3.0, size=8), r.uniform(0.1, 3.0, size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert got > 1.0  # the two Gaussians differ, so the check has teeth
    # Hand case: N(0, 1) vs N(3, 4): 9 + (1 - 2)^2.
    assert frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0, rel=1e-12)


def test_frechet_distance_of_full_covariances_matches_sqrtm_reference():
    r = rng(2)
    for d in (3, 20, 64):
        mu1, mu2 = r.normal(size=d), r.normal(size=d)
        s1, s2 = random_spd(r, d), random_spd(r, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            reference_fd(mu1, s1, mu2, s2), rel=1e-8)
        assert fid_from_stats((mu1, s1), (mu2, s2)) == frechet_distance(mu1, s1, mu2, s2)


def test_fid_with_singular_covariances_matches_sqrtm_reference():
    r = rng(3)
    real, fake = r.normal(size=(10, 32)), 0.5 + 2.0 * r.normal(size=(12, 32))
    (mu1, s1), (mu2, s2) = feature_statistics(real), feature_statistics(fake)
    assert np.linalg.matrix_rank(s1) == 9  # N < D: singular
    got = fid(real, fake)
    assert np.isfinite(got)
    assert got == pytest.approx(reference_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_fid_rejects_mismatched_dimensions():
    with pytest.raises(MetricError, match=r"statistics of one dimension, got 3 and 4"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(MetricError, match=r"mu2 of shape \(D,\) and sigma2 of shape \(D, D\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(MetricError, match=r"FID needs features of one dimension, got 5 \(real\) "
                                          r"and 6 \(fake\); extract both sets with the same"):
        fid(np.ones((4, 5)), np.ones((4, 6)))


# --- KID --------------------------------------------------------------------------------------

def reference_mmd2(x, y):
    """Unbiased MMD^2 with the cubic kernel, from full kernel matrices and off-diagonal masks."""
    d = x.shape[1]
    kernel = lambda a, b: (np.einsum("id,jd->ij", a, b) / d + 1.0) ** 3  # noqa: E731
    off = lambda k: k[~np.eye(len(k), dtype=bool)].mean()  # noqa: E731
    return off(kernel(x, x)) + off(kernel(y, y)) - 2.0 * kernel(x, y).mean()


def test_kid_on_one_full_subset_matches_full_kernel_reference():
    r = rng(4)
    x, y = r.normal(size=(40, 7)), 0.5 + r.normal(size=(40, 7))
    expected = reference_mmd2(x, y)
    assert expected > 0.1
    # subset_size >= N: every subset is the whole set, so every estimate is the same.
    mean, std = kid(x, y, num_subsets=3, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-10)


def test_kid_subsets_are_drawn_as_documented():
    r = rng(5)
    x, y = r.normal(size=(30, 4)), 0.5 + r.normal(size=(20, 4))
    draw = np.random.default_rng(7)
    estimates = []
    for _ in range(4):  # m = min(subset_size, 30, 20) = 20: real rows, then fake rows
        xi = draw.choice(30, 20, replace=False)
        yi = draw.choice(20, 20, replace=False)
        estimates.append(reference_mmd2(x[xi], y[yi]))
    mean, std = kid(x, y, num_subsets=4, subset_size=50, seed=7)
    assert mean == pytest.approx(np.mean(estimates), rel=1e-10)
    assert std == pytest.approx(np.std(estimates), rel=1e-8)
    assert std > 0


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    r = rng(6)
    x, y = r.normal(size=(500, 16)), r.normal(size=(500, 16))
    same, _ = kid(x, y, num_subsets=50, subset_size=200)
    small, _ = kid(x, y + 0.2, num_subsets=50, subset_size=200)
    large, _ = kid(x, y + 1.0, num_subsets=50, subset_size=200)
    assert abs(same) < 0.02
    assert 0.05 < small < large
    assert large > 5.0


def test_kid_is_deterministic_given_the_seed():
    r = rng(7)
    x, y = r.normal(size=(60, 5)), r.normal(size=(50, 5)) + 0.1
    a = kid(x, y, num_subsets=5, subset_size=10, seed=3)
    assert kid(x, y, num_subsets=5, subset_size=10, seed=3) == a
    assert kid(x, y, num_subsets=5, subset_size=10, seed=4) != a


# --- Inception Score --------------------------------------------------------------------------

def reference_is(logits, splits):
    p = scipy.special.softmax(logits, axis=1)
    n = len(p)
    values = []
    for i in range(splits):
        part = p[n * i // splits:n * (i + 1) // splits]
        py = part.mean(axis=0)
        values.append(np.exp(np.mean([scipy.stats.entropy(row, py) for row in part])))
    return np.mean(values), np.std(values)


def test_inception_score_of_confident_even_predictions_is_the_number_of_classes():
    num_classes, c = 5, 2.0
    logits = c * np.eye(num_classes)[np.arange(100) % num_classes]
    # Each chunk of 10 rows holds every class twice, so p(y) is uniform; with a = p(true class),
    # b = (1 - a) / (K - 1): IS = exp(a log(aK) + (1 - a) log(bK)).
    a = np.exp(c) / (np.exp(c) + num_classes - 1)
    b = (1 - a) / (num_classes - 1)
    expected = np.exp(a * np.log(a * num_classes) + (1 - a) * np.log(b * num_classes))
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    # Confident (one-hot) predictions: IS = K, also for logits whose softmax underflows to 0,
    # and with an extra class that is never predicted (p(y) = 0 there for float64).
    for scale in (60.0, 1e4):
        assert inception_score(scale * logits / c, splits=10)[0] == pytest.approx(num_classes,
                                                                                  rel=1e-12)
    unused_class = np.concatenate([logits, np.zeros((100, 1))], axis=1) * 1e4 / c
    assert inception_score(unused_class, splits=10) == pytest.approx((num_classes, 0.0),
                                                                     rel=1e-12, abs=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    row = rng(8).normal(size=10) * 3
    mean, std = inception_score(np.tile(row, (40, 1)), splits=4)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_reference_including_uneven_splits():
    logits = 3.0 * rng(9).normal(size=(103, 12))
    for splits in (1, 5, 10):
        expected = reference_is(logits, splits)
        got = inception_score(logits, splits=splits)
        np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert expected[1] > 0


# --- precision / recall -----------------------------------------------------------------------

def reference_pr(real, fake, k):
    def coverage(manifold, queries):
        radii = NearestNeighbors(n_neighbors=k + 1).fit(manifold).kneighbors(manifold)[0][:, k]
        return np.mean((cdist(queries, manifold) <= radii[None, :]).any(axis=1))
    return coverage(real, fake), coverage(fake, real)


def test_precision_recall_of_identical_and_far_apart_sets():
    x = rng(10).normal(size=(100, 8))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_precision_recall_hand_computed_1d():
    # k=1 radii of real: 1, 1, 1, 1, 7 -> the real manifold is [-1, 17]. Boundary points count.
    real = np.array([0.0, 1, 2, 3, 10])[:, None]
    fake = np.array([-1.5, -1, 0.5, 4, 17, 17.5, 20, 5])[:, None]
    # inside: -1, 0.5, 4, 17, 5 -> 5/8. Fake k=1 radii: 0.5, 0.5, 1.5, 1, 0.5, 0.5, 2.5, 1
    # cover [-2, 2], [3, 6], [16.5, 22.5]: real 0, 1, 2, 3 inside, 10 outside -> 4/5.
    assert precision_recall(real, fake, k=1) == (5 / 8, 4 / 5)


def test_precision_recall_hand_computed_2d():
    # k=2 radius of every corner of the unit square is 1 (two neighbours at 1, one at sqrt 2).
    real = np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    # (0.5, 0.5) in, (2, 0) on the boundary of (1, 0), (1, 2) on that of (1, 1), (2, 2) and
    # (-1, -1) at sqrt 2 from the nearest corner: out -> 3/5. Fake k=2 radii^2 are 2.5, 4, 4, 10,
    # 2.5 and every corner is 0.5 from (0.5, 0.5) -> recall 1. With k=3 the corners' radius is
    # sqrt 2, so (2, 2) and (-1, -1) come in too.
    fake = np.array([[0.5, 0.5], [2, 0], [2, 2], [-1, -1], [1, 2]])
    assert precision_recall(real, fake, k=2) == (3 / 5, 1.0)
    assert precision_recall(real, fake, k=3)[0] == 1.0


def test_precision_recall_matches_sklearn_reference(monkeypatch):
    r = rng(11)
    real = r.normal(size=(120, 6))
    fake = 0.7 * r.normal(size=(90, 6)) + 0.8
    real[5] = real[17]  # a duplicate: its 1st neighbour is at distance 0
    for k in (1, 3, 5):
        expected = reference_pr(real, fake, k)
        assert 0.05 < expected[0] < 0.95 and 0.05 < expected[1] < 0.95
        assert precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-12)
        # Same result when the pairwise work runs in blocks of 7 rows (last block partial).
        monkeypatch.setattr(scores, "_BLOCK_BYTES", 8 * 7 * 120)
        assert precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-12)
        monkeypatch.undo()


# --- errors -----------------------------------------------------------------------------------

def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_too_few_samples_are_one_line_errors():
    x = np.ones((1, 4))
    with pytest.raises(MetricError) as e:
        fid(x, np.ones((5, 4)))
    assert one_line(e) == ("FID needs at least 2 samples in real_features, got 1; "
                           "generate or load more samples")
    with pytest.raises(MetricError, match=r"KID needs at least 2 samples in fake, got 1"):
        kid(np.ones((5, 4)), x)
    with pytest.raises(MetricError) as e:
        inception_score(np.ones((9, 4)), splits=10)
    assert "needs at least 10 samples in logits, got 9" in one_line(e)
    assert "pass fewer splits" in one_line(e)
    with pytest.raises(MetricError) as e:
        precision_recall(np.ones((3, 4)), np.ones((10, 4)), k=3)
    assert "precision/recall with k=3 needs at least 4 samples in real, got 3" in one_line(e)
    with pytest.raises(MetricError, match=r"at least 2 samples in features, got 1"):
        feature_statistics(x)


def test_non_finite_features_are_rejected():
    x = rng(12).normal(size=(20, 3))
    x[7, 2] = np.nan
    for call in (lambda: fid(np.ones((20, 3)), x), lambda: kid(x, np.ones((20, 3))),
                 lambda: precision_recall(x, np.ones((20, 3))),
                 lambda: inception_score(x, splits=2)):
        with pytest.raises(MetricError) as e:
            call()
        assert "1 non-finite values (NaN/inf), first in row 7" in one_line(e)
    with pytest.raises(MetricError, match=r"mu1/sigma1 contain NaN or inf"):
        frechet_distance(np.array([np.inf]), np.eye(1), np.zeros(1), np.eye(1))


def test_wrong_ndim_is_rejected():
    with pytest.raises(MetricError) as e:
        fid(np.ones((4, 3, 2)), np.ones((4, 6)))
    assert one_line(e) == ("real_features must be 2-D (num_samples, dim), got shape (4, 3, 2); "
                           "flatten or reshape the features to (num_samples, dim)")
    with pytest.raises(MetricError, match=r"logits must be 2-D .* got shape \(10,\)"):
        inception_score(np.ones(10), splits=1)
    with pytest.raises(MetricError, match=r"fake must be 2-D"):
        precision_recall(np.ones((5, 2)), np.ones(5))
    with pytest.raises(MetricError, match=r"must be a numeric array"):
        kid([["a", "b"], ["c", "d"]], np.ones((2, 2)))
