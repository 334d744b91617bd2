"""ADA: the bgc ops on hand-made images, p = 0, per-example keys, gradients, the p controller."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import ada

geometric = jax.jit(ada.geometric_transform)
augment = jax.jit(ada.ada_augment)
N = 16


def images_of(shape, seed=1):
    return jax.random.uniform(jax.random.key(seed), shape, minval=-1.0, maxval=1.0)


def keys_of(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def ramp():
    """(N, N, 1): a horizontal ramp with slope 1/N, zero-mean."""
    return jnp.asarray(np.tile((np.arange(N) - (N - 1) / 2) / N, (N, 1))[..., None], jnp.float32)


# --- geometric ops: one resampling through reflect padding and sym6 up/down ------------------

def test_identity_resampling_reconstructs_the_image():
    # sym6 is orthogonal: 2x up then 2x down through it is the identity (float rounding only)
    x = images_of((N, N, 3))
    np.testing.assert_allclose(geometric(x, jnp.eye(3)), x, atol=1e-6)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, -2), (3, 2)])
def test_integer_translation_is_exact_with_reflect_padding(dx, dy):
    # G_inv = translate2d_inv(dx, dy): out[y, x] = in[y - dy, x - dx], reflected at the borders
    x = np.asarray(images_of((N, N, 3)))
    out = geometric(jnp.asarray(x), ada.translate2d(-dx, -dy))
    padded = np.pad(x, ((N - 1, N - 1), (N - 1, N - 1), (0, 0)), mode="reflect")
    expected = padded[N - 1 - dy:2 * N - 1 - dy, N - 1 - dx:2 * N - 1 - dx]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_xflip_and_rotate90_match_numpy_up_to_the_sym6_delay():
    # sym6 is not linear-phase: its centroid is at 5.098 taps, not the 5 the reference's half-pixel
    # shift assumes, so mirrored content moves by 0.098 px (the reference's too). On a ramp of
    # slope 1/N that is 0.098 / N = 0.0061 away from the borders.
    x = ramp()
    flipped = geometric(x, ada.scale2d(-1.0, 1.0))
    np.testing.assert_allclose(flipped[2:-2, 3:-3], x[2:-2, ::-1][:, 3:-3], atol=0.0065)
    assert float(jnp.abs(flipped - x[:, ::-1]).max()) < 0.01
    rotated = geometric(x, ada.rotate2d(jnp.pi / 2))  # rotate2d_inv(-pi/2): a quarter turn
    assert float(jnp.abs(rotated - jnp.rot90(x, 1)).max()) < 0.01
    assert float(jnp.abs(rotated - jnp.rot90(x, -1)).max()) > 0.5


def test_isotropic_scaling_of_a_ramp_scales_its_slope():
    # out(x) = in(x / 2): the ramp's slope halves at the centre
    out = np.asarray(geometric(ramp(), ada.scale2d(0.5, 0.5)))[N // 2, :, 0]
    np.testing.assert_allclose(np.diff(out)[4:-4], 0.5 / N, atol=2e-4)


# --- colour ops: one 4x4 matrix -------------------------------------------------------------

def luma_projector():
    v = np.array([1, 1, 1]) / np.sqrt(3)
    return np.outer(v, v)


@pytest.mark.parametrize("name", ["brightness", "contrast", "lumaflip", "hue", "saturation"])
def test_each_colour_matrix_matches_its_numpy_formula(name):
    x = np.asarray(images_of((4, 4, 3)), np.float64)
    mean = x @ luma_projector()  # the projection of each pixel on the luma axis
    b, c, s, theta = 0.3, 1.5, 0.25, np.pi / 2
    matrix, expected = {
        "brightness": (ada.translate3d(b), x + b),
        "contrast": (ada.scale3d(c), x * c),
        "lumaflip": (jnp.eye(4) - 2 * jnp.outer(ada.LUMA_AXIS, ada.LUMA_AXIS), x - 2 * mean),
        # a quarter turn about the grey axis: Rodrigues with k = v, cos 0, sin 1
        "hue": (ada.rotate3d(ada.LUMA_AXIS, theta),
                mean + np.cross(np.ones(3) / np.sqrt(3), x - mean)),
        "saturation": (jnp.outer(ada.LUMA_AXIS, ada.LUMA_AXIS)
                       + (jnp.eye(4) - jnp.outer(ada.LUMA_AXIS, ada.LUMA_AXIS)) * s,
                       mean + s * (x - mean)),
    }[name]
    out = ada.color_transform(jnp.asarray(x, jnp.float32), matrix)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_one_channel_uses_the_mean_of_the_rgb_rows():
    # brightness 0.3 then contrast 2: every row gives 2x + 0.6 (the reference's L mode)
    x = images_of((4, 4, 1))
    c = ada.scale3d(2.0) @ ada.translate3d(0.3)
    np.testing.assert_allclose(ada.color_transform(x, c), 2 * x + 0.6, atol=1e-6)


# --- the random pipeline ---------------------------------------------------------------------

def test_p_zero_is_the_identity_bitwise():
    x = images_of((4, N, N, 3))
    np.testing.assert_array_equal(augment(x, keys_of(4), 0.0), x)


def test_p_one_changes_every_example_and_keeps_the_shape():
    x = images_of((4, N, N, 3))
    out = augment(x, keys_of(4), 1.0)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert all(float(jnp.abs(out[i] - x[i]).max()) > 0.05 for i in range(4))


def test_an_example_depends_only_on_its_key_and_image():
    x, keys = images_of((4, N, N, 3)), keys_of(4)
    full = augment(x, keys, 0.7)
    other = images_of((4, N, N, 3), seed=5).at[2].set(x[2])
    swapped = keys_of(4, seed=3).at[2].set(keys[2])
    np.testing.assert_array_equal(augment(other, swapped, 0.7)[2], full[2])


def test_op_probabilities_follow_p():
    # each geometric op fires with probability p: P(no op of 7) = (1 - p)^6 (1 - p_rot)^2 ...
    keys = keys_of(2000)
    p = 0.2
    applied = jax.jit(jax.vmap(lambda k: ada.draw_geometry(k, p, N, N)[1]))(keys)
    p_rot = 1 - np.sqrt(1 - p)
    expected = 1 - (1 - p) ** 6 * (1 - p_rot) ** 2
    assert abs(float(jnp.mean(applied)) - expected) < 0.03


def test_gradients_reach_the_images():
    x, keys = images_of((2, 8, 8, 1)), keys_of(2)
    grads = jax.jit(jax.grad(lambda x: jnp.sum(ada.ada_augment(x, keys, 1.0) ** 2)))(x)
    assert bool(jnp.all(jnp.isfinite(grads))) and float(jnp.abs(grads).sum()) > 0


# --- the p controller (training_loop.py: sign(r_t - target) * batch * interval / (kimg * 1000)) --

def test_controller_trajectory_on_synthetic_signs():
    ctl = ada.AdaController(target=0.6, interval=2, kimg=0.01)  # 10 images move p by 1
    state = ctl.init_state()
    # (sign sum, count) per D update; adjustments after updates 2, 4, 6
    signs = [(4, 4), (4, 4), (0, 4), (-2, 4), (3, 4), (2, 4)]
    trajectory = []
    for s, n in signs:
        state = ctl.update(state, jnp.float32(s), jnp.float32(n))
        trajectory.append((float(state["p"]), float(state["rt"])))
    # r_t = 1.0 > 0.6: p = 0 + 8 / 10; r_t = -0.25: p = 0.8 - 0.8 = 0; r_t = 0.625: p = 0.8
    np.testing.assert_allclose(trajectory, [(0, 0), (0.8, 1.0), (0.8, 1.0), (0.0, -0.25),
                                            (0.0, -0.25), (0.8, 0.625)], atol=1e-6)
    state = ctl.update(state, jnp.float32(-4), jnp.float32(4))
    state = ctl.update(state, jnp.float32(-4), jnp.float32(4))
    state = ctl.update(state, jnp.float32(-4), jnp.float32(4))
    state = ctl.update(state, jnp.float32(-4), jnp.float32(4))
    assert float(state["p"]) == 0.0  # clamped at 0


def test_fixed_p_mode_never_moves():
    ctl = ada.AdaController(target=None, initial_p=0.3)
    state = ctl.update(ctl.init_state(), jnp.float32(4), jnp.float32(4))
    assert float(state["p"]) == np.float32(0.3)


# --- data parallel: the same p and the same training on 8 devices as on 1 -----------------------

@pytest.mark.slow  # two compiles, one of them for 8 devices
def test_ada_on_eight_devices_matches_one_device(tiny_config, tmp_path):
    """Each example is augmented from its own (global) key and D's real signs are summed over all
    devices, so r_t is the same on 8 devices as on 1 and so is p's trajectory, to 1 ulp (XLA may
    compute count / (kimg * 1000) as a product with the reciprocal in one program and not in the
    other), and the trained state agrees."""
    import json

    from gan_jax.train import train_and_evaluate

    tiny_config.model.g_norm = tiny_config.model.d_norm = "layer"  # no per-device statistics
    a = tiny_config.augment
    a.kind, a.p, a.ada_target, a.ada_interval, a.ada_kimg = "ada", 0.5, 0.6, 1, 0.16
    tiny_config.train.log_every_steps = 1
    runs = {n: train_and_evaluate(tiny_config, tmp_path / str(n), devices=jax.devices()[:n],
                                  progress=False) for n in (1, 8)}
    logged = {n: np.array([(line["ada_p"], line["ada_rt"])
                           for line in map(json.loads, (tmp_path / str(n) / "metrics.jsonl").open())])
              for n in (1, 8)}
    assert logged[1].shape == (4, 2)
    np.testing.assert_array_equal(logged[1][:, 1], logged[8][:, 1])  # r_t: sign counts
    np.testing.assert_allclose(logged[1][:, 0], logged[8][:, 0], rtol=1e-7)
    # each step moves p by 16 images / 160 = 0.1 (p starts at 0.5: never clamped in 4 steps)
    np.testing.assert_allclose(np.abs(np.diff(np.concatenate([[0.5], logged[1][:, 0]]))), 0.1,
                               rtol=1e-5)
    np.testing.assert_allclose(runs[1].task_state["ada"]["p"], runs[8].task_state["ada"]["p"],
                               rtol=1e-7)
    for x, y in zip(jax.tree.leaves(runs[1].g_params), jax.tree.leaves(runs[8].g_params)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)
