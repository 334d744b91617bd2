"""DiffAugment: exact transforms on hand-made images, reference distributions, per-example keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from gan_jax import augment, parallel


# Jitted once per shape: eager dispatch compiles every primitive separately and is slower here.
augment_jit = jax.jit(augment.diff_augment, static_argnums=2)


def keys_of(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def images_of(shape, seed=1, dtype=jnp.float32):
    return jax.random.uniform(jax.random.key(seed), shape, minval=-1.0, maxval=1.0).astype(dtype)


def numpy_translate(image, dy, dx):
    """out[y, x] = image[y - dy, x - dx], zero where that is outside: the definition, by slicing."""
    h, w = image.shape[:2]
    dy, dx = int(np.clip(dy, -h, h)), int(np.clip(dx, -w, w))  # further moves out entirely too
    out = np.zeros_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


# --- sizes from the reference: round(size / 8) and round(size / 2) ----------------------------

@pytest.mark.parametrize("size, shift, cut", [(7, 1, 4), (16, 2, 8), (28, 4, 14), (32, 4, 16),
                                              (64, 8, 32)])
def test_max_shift_and_cutout_size_round_half_up(size, shift, cut):
    assert augment.max_shift(size) == shift
    assert augment.cutout_size(size) == cut


# --- exact transforms -------------------------------------------------------------------------

def test_brightness_adds_per_example_shift():
    x = jnp.array([0.2, 0.4, 0.6]).reshape(1, 1, 1, 3) * jnp.ones((2, 1, 1, 1))
    out = augment.brightness(x, jnp.array([0.1, -0.5]))
    np.testing.assert_allclose(out[:, 0, 0], [[0.3, 0.5, 0.7], [-0.3, -0.1, 0.1]], atol=1e-6)


def test_saturation_scales_deviation_from_channel_mean():
    x = jnp.array([0.2, 0.4, 0.6]).reshape(1, 1, 1, 3) * jnp.ones((3, 1, 1, 1))
    out = augment.saturation(x, jnp.array([2.0, 0.0, 1.0]))  # pixel mean 0.4
    np.testing.assert_allclose(out[:, 0, 0], [[0.0, 0.4, 0.8], [0.4, 0.4, 0.4], [0.2, 0.4, 0.6]],
                               atol=1e-6)


def test_saturation_is_identity_on_one_channel():
    x = images_of((2, 4, 4, 1))
    np.testing.assert_allclose(augment.saturation(x, jnp.array([0.0, 2.0])), x, atol=1e-6)


def test_contrast_scales_deviation_from_image_mean():
    # one image, 2 pixels x 2 channels: values 0, 1, 2, 3 with mean 1.5
    x = jnp.arange(4.0).reshape(1, 1, 2, 2)
    out = augment.contrast(x, jnp.array([0.5]))
    np.testing.assert_allclose(out.ravel(), [0.75, 1.25, 1.75, 2.25], atol=1e-6)


def test_color_is_brightness_then_saturation_then_contrast():
    x = images_of((2, 4, 4, 3))
    params = jnp.array([[0.1, 1.5, 0.7], [-0.3, 0.2, 1.4]])
    expected = augment.brightness(x, params[:, 0])
    expected = augment.contrast(augment.saturation(expected, params[:, 1]), params[:, 2])
    np.testing.assert_allclose(augment.color(x, params), expected, atol=1e-6)


def test_translation_moves_a_single_pixel_down_right():
    x = jnp.zeros((1, 8, 8, 1)).at[0, 0, 0, 0].set(1.0)
    out = augment.translation(x, jnp.array([[1, 2]]))
    assert float(out[0, 1, 2, 0]) == 1.0 and float(jnp.sum(out)) == 1.0


@pytest.mark.parametrize("shift", [(0, 0), (1, -2), (-3, 3), (4, 0), (0, -4), (8, 1), (-9, -9)])
def test_translation_matches_slicing_definition_with_zero_fill(shift):
    x = np.arange(1, 1 + 8 * 8 * 3, dtype=np.float32).reshape(1, 8, 8, 3)  # no zero pixels
    out = augment.translation(jnp.asarray(x), jnp.array([shift]))
    np.testing.assert_array_equal(np.asarray(out[0]), numpy_translate(x[0], *shift))


def test_translation_uses_each_examples_own_shift():
    x = images_of((3, 16, 16, 3))
    shifts = jnp.array([[2, -1], [0, 0], [-2, 2]])
    out = np.asarray(augment.translation(x, shifts))
    for i, (dy, dx) in enumerate(np.asarray(shifts)):
        np.testing.assert_array_equal(out[i], numpy_translate(np.asarray(x[i]), dy, dx))


def test_cutout_zeroes_exactly_the_square_in_all_channels():
    x = jnp.ones((1, 16, 16, 3))
    out = np.asarray(augment.cutout(x, jnp.array([[2, 3]])))
    expected = np.ones((16, 16, 3), np.float32)
    expected[2:10, 3:11] = 0.0  # cutout_size(16) = 8
    np.testing.assert_array_equal(out[0], expected)


@pytest.mark.parametrize("corner, rows, cols", [((-4, 12), (0, 4), (12, 16)),
                                                ((20, -20), (0, 0), (0, 0)),
                                                ((0, 0), (0, 8), (0, 8))])
def test_cutout_square_is_clipped_at_the_borders(corner, rows, cols):
    out = np.asarray(augment.cutout(jnp.ones((1, 16, 16, 1)), jnp.array([corner])))
    expected = np.ones((16, 16, 1), np.float32)
    expected[rows[0]:rows[1], cols[0]:cols[1]] = 0.0
    np.testing.assert_array_equal(out[0], expected)


def test_cutout_of_28_pixels_is_14_square():
    out = augment.cutout(jnp.ones((2, 28, 28, 1)), jnp.array([[0, 0], [7, 7]]))
    assert [int(n) for n in jnp.sum(out == 0, axis=(1, 2, 3))] == [14 * 14, 14 * 14]
    assert float(jnp.sum(out[1, 7:21, 7:21])) == 0.0


# --- reference distributions ------------------------------------------------------------------

@jax.jit
def draw_ranges(keys):
    return (jax.vmap(augment.draw_color)(keys),
            jax.vmap(lambda k: augment.draw_translation(k, 16, 32))(keys),
            jax.vmap(lambda k: augment.draw_cutout(k, 16, 7))(keys))


def test_draws_cover_the_reference_ranges():
    color, shifts, corners = map(np.asarray, draw_ranges(keys_of(512)))
    assert (color.min(0) >= [-0.5, 0.0, 0.5]).all() and (color.max(0) <= [0.5, 2.0, 1.5]).all()
    assert (color.max(0) - color.min(0) > [0.9, 1.8, 0.9]).all()
    assert shifts.dtype == np.int32
    assert sorted(set(shifts[:, 0])) == [-2, -1, 0, 1, 2]
    assert sorted(set(shifts[:, 1])) == list(range(-4, 5))
    # centre uniform on [0, size] ([0, size - 1] for an odd cutout size); corner = centre - cut // 2
    assert sorted(set(corners[:, 0])) == list(range(-4, 13))
    assert sorted(set(corners[:, 1])) == list(range(-2, 6))  # cutout_size(7) = 4


# --- the random ops and the policy: most tests share one shape so compilations are reused -----

X, KEYS = images_of((4, 16, 16, 3)), keys_of(4)


@jax.jit
def drawn(keys):
    """Each op's (B, ...) parameters for 16 x 16 images."""
    return (jax.vmap(augment.draw_color)(keys),
            jax.vmap(lambda k: augment.draw_translation(k, 16, 16))(keys),
            jax.vmap(lambda k: augment.draw_cutout(k, 16, 16))(keys))


def test_diff_augment_is_the_exact_transforms_of_the_drawn_parameters_in_reference_order():
    color, shifts, corners = drawn(KEYS)
    expected = jax.jit(lambda x: augment.cutout(
        augment.translation(augment.color(x, color), shifts), corners))(X)
    out = augment_jit(X, KEYS, ("cutout", "color", "translation"))  # order is POLICIES'
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_each_op_draws_the_same_parameters_whatever_else_is_in_the_policy():
    _, shifts, corners = drawn(KEYS)
    alone = augment_jit(X, KEYS, ("translation",))
    np.testing.assert_array_equal(alone, augment.translation(X, shifts))
    with_cutout = augment_jit(X, KEYS, ("translation", "cutout"))
    np.testing.assert_array_equal(with_cutout, augment.cutout(alone, corners))


def test_empty_policy_is_identity():
    assert augment.diff_augment(X, KEYS, ()) is X
    assert augment.make_augment(()) is None
    assert augment.make_augment(augment.parse_policy("")) is None


def test_each_example_depends_only_on_its_own_key():
    batch = augment_jit(X, KEYS, augment.POLICIES)
    for i in range(4):
        alone = augment_jit(X[i:i + 1], KEYS[i:i + 1], augment.POLICIES)
        np.testing.assert_allclose(alone[0], batch[i], atol=1e-6)


def test_deterministic_in_keys_and_different_keys_differ():
    a = augment_jit(X, KEYS, augment.POLICIES)
    np.testing.assert_array_equal(a, augment_jit(X, keys_of(4), augment.POLICIES))
    assert not np.allclose(a, augment_jit(X, keys_of(4, seed=5), augment.POLICIES))


@pytest.mark.parametrize("shape", [(2, 16, 16, 1), (2, 28, 28, 1), (2, 32, 32, 3), (1, 64, 64, 3),
                                   (2, 12, 20, 3)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_shape_and_dtype_preserved(shape, dtype):
    x = jax.ShapeDtypeStruct(shape, dtype)
    out = jax.eval_shape(lambda i, k: augment.diff_augment(i, k, augment.POLICIES), x,
                         keys_of(shape[0]))
    assert out.shape == shape and out.dtype == dtype


def test_runs_on_one_channel_28_in_bfloat16():
    out = augment_jit(images_of((2, 28, 28, 1), dtype=jnp.bfloat16), keys_of(2), augment.POLICIES)
    assert out.shape == (2, 28, 28, 1) and out.dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(out.astype(jnp.float32))))
    assert int(jnp.sum(out == 0)) >= 2 * 7 * 7  # a cutout square is at least a quarter inside


def test_make_augment_is_diff_augment_of_the_policy():
    fn = augment.make_augment(augment.parse_policy("color,translation,cutout"))
    np.testing.assert_array_equal(jax.jit(fn)(X, KEYS), augment_jit(X, KEYS, augment.POLICIES))
    # a value, so tasks holding it compare equal and hash the same
    assert fn == augment.make_augment(["color", "translation", "cutout"])
    assert hash(fn) == hash(augment.DiffAugment(augment.POLICIES))


def test_inside_shard_map_matches_one_device():
    mesh = parallel.make_mesh()
    x, keys = images_of((mesh.size, 16, 16, 3)), keys_of(mesh.size)
    sharded = jax.jit(jax.shard_map(lambda i, k: augment.diff_augment(i, k, augment.POLICIES),
                                    mesh=mesh, in_specs=(P(parallel.DATA_AXIS),) * 2,
                                    out_specs=P(parallel.DATA_AXIS)))
    np.testing.assert_allclose(sharded(x, keys), augment_jit(x, keys, augment.POLICIES), atol=1e-6)


# --- gradients w.r.t. the images --------------------------------------------------------------

def test_translation_gradient_is_one_on_kept_pixels_only():
    shifts = jnp.array([[2, -3], [-1, 0], [0, 0], [-16, 5]])
    grad = jax.grad(lambda v: jnp.sum(augment.translation(v, shifts)))(X)
    for i, (dy, dx) in enumerate(np.asarray(shifts)):
        kept = numpy_translate(np.ones((16, 16, 3), np.float32), -dy, -dx)  # sources landing inside
        np.testing.assert_array_equal(grad[i], kept)


def test_cutout_gradient_is_the_mask():
    corners = jnp.array([[-4, 10], [0, 0], [3, 5], [12, 12]])
    grad = jax.grad(lambda v: jnp.sum(augment.cutout(v, corners)))(X)
    np.testing.assert_array_equal(grad, augment.cutout(jnp.ones_like(X), corners))


def test_random_geometric_gradient_is_the_mask_of_pixels_seen():
    policy = ("translation", "cutout")
    grad = jax.jit(jax.grad(lambda v: jnp.sum(augment.diff_augment(v, KEYS, policy))))(X)
    _, shifts, _ = drawn(KEYS)
    # a pixel is seen iff it lands inside and outside the cutout: move the output mask back
    seen = augment.translation(augment_jit(jnp.ones_like(X), KEYS, policy), -shifts)
    np.testing.assert_array_equal(grad, seen)
    assert 0 < float(jnp.sum(grad)) < X.size


def test_color_gradient_is_the_chain_rule_of_the_drawn_factors():
    # sum of contrast(saturation(brightness(x))) over an image: mean-preserving ops, so d/dx = 1
    grad = jax.jit(jax.grad(lambda v: jnp.sum(augment.diff_augment(v, KEYS, ("color",)))))(X)
    np.testing.assert_allclose(grad, jnp.ones_like(X), atol=1e-5)
    color, _, _ = drawn(KEYS)
    # a linear probe w: the means are self-adjoint projections, so with w0 = w - mean(w) and
    # m = the channel mean of w0, d/dx <w, T(x)> = mean(w) + c (m + s (w0 - m)) for the drawn s, c
    w = images_of(X.shape, seed=7)
    grad = jax.grad(lambda v: jnp.sum(w * augment.diff_augment(v, KEYS, ("color",))))(X)
    s, c = color[:, 1].reshape(-1, 1, 1, 1), color[:, 2].reshape(-1, 1, 1, 1)
    w_mean = jnp.mean(w, axis=(1, 2, 3), keepdims=True)
    m = jnp.mean(w - w_mean, axis=-1, keepdims=True)
    expected = w_mean + c * (m + s * (w - w_mean - m))
    np.testing.assert_allclose(grad, expected, atol=1e-5)


# --- policies and errors ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("", ()),
    ("color", ("color",)),
    (" cutout , color ", ("color", "cutout")),
    ("color,translation,cutout", augment.POLICIES),
    ("translation,translation", ("translation",)),
])
def test_parse_policy(text, expected):
    assert augment.parse_policy(text) == expected


def test_parse_policy_rejects_unknown_names_in_one_line():
    with pytest.raises(ValueError) as err:
        augment.parse_policy("color,colour")
    message = str(err.value)
    assert "'colour'" in message and "\n" not in message
    assert all(name in message for name in augment.POLICIES)


def test_bad_calls_raise():
    x = X[:2]
    with pytest.raises(TypeError, match="parse_policy"):
        augment.diff_augment(x, keys_of(2), "color")
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        augment.make_augment(("flip",))
    with pytest.raises(ValueError, match="one typed key per example"):
        augment.diff_augment(x, keys_of(3), ("color",))
    with pytest.raises(TypeError, match="float NHWC"):
        augment.diff_augment(jnp.zeros((2, 8, 8, 3), jnp.uint8), keys_of(2), ("color",))


def test_training_with_diffaugment_is_deterministic_and_augments(tiny_config, tmp_path):
    """Through the train step: reproducible with its own streams, and D sees augmented images."""
    from gan_jax.train import train_and_evaluate
    from test_train import assert_bitwise_equal, leaves

    one = jax.devices()[:1]
    tiny_config.train.num_steps = 2
    plain = train_and_evaluate(tiny_config, tmp_path / "plain", devices=one, progress=False)
    tiny_config.augment.policy = "color,translation,cutout"
    a = train_and_evaluate(tiny_config, tmp_path / "a", devices=one, progress=False)
    b = train_and_evaluate(tiny_config, tmp_path / "b", devices=one, progress=False)
    assert_bitwise_equal(a, b)
    assert not np.array_equal(leaves(a)[0], leaves(plain)[0])
