"""StyleGAN2 (gan_jax/models/stylegan2.py) and its equalized layers (models/equalized.py)."""

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import optax
from jax.sharding import PartitionSpec as P

from gan_jax import images, parallel, run as run_lib
from gan_jax.configs import (celeba64_stylegan2, cifar10_stylegan2, digits_stylegan2,
                             ffhq256_stylegan2)
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import make_source
from gan_jax.models import equalized as eq
from gan_jax.models import stylegan2 as sg
from gan_jax.tasks import stylegan2 as sg_task

# Parameter counts (parameters only, no buffers) of NVlabs/stylegan2-ada-pytorch at commit
# d72cc7d041b42ec8e806021a205ed9349f87c6a4, training/networks.py, instantiated with torch on CPU:
#   Generator(z_dim=Z, c_dim=C, w_dim=Z, img_resolution=R, img_channels=CH,
#             mapping_kwargs=dict(num_layers=M),
#             synthesis_kwargs=dict(channel_base=BASE, channel_max=MAX))
#   Discriminator(c_dim=C, img_resolution=R, img_channels=CH, architecture=ARCH,
#                 channel_base=BASE, channel_max=MAX)
# sum(p.numel() for p in net.parameters()) -> (G, D).
REFERENCE_COUNTS = {
    # name: ((Z, C, R, CH, M, BASE, MAX, ARCH), (G params, D params))
    "digits_stylegan2": ((64, 0, 16, 1, 2, 1024, 64, "resnet"), (227_464, 259_201)),
    "cifar10_stylegan2": ((512, 0, 32, 3, 2, 32768, 512, "orig"), (19_947_539, 20_720_641)),
    "cifar10_conditional": ((512, 10, 32, 3, 2, 32768, 512, "orig"), (20_215_315, 23_089_664)),
    "celeba64_stylegan2": ((512, 0, 64, 3, 2, 16384, 512, "resnet"), (22_243_608, 23_407_361)),
    # NVlabs --cfg=paper256 and --cfg=stylegan2 (config F) at 1024 px
    "ffhq256_stylegan2": ((512, 0, 256, 3, 8, 16384, 512, "resnet"), (24_767_458, 24_001_089)),
    "config_f_1024": ((512, 0, 1024, 3, 8, 32768, 512, "resnet"), (30_370_060, 29_012_513)),
}
CONFIGS = {"digits_stylegan2": digits_stylegan2, "cifar10_stylegan2": cifar10_stylegan2,
           "celeba64_stylegan2": celeba64_stylegan2, "ffhq256_stylegan2": ffhq256_stylegan2}


def num_params(variables) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))


def abstract_variables(generator, discriminator, resolution, channels, latent_dim, num_classes=0):
    """Shapes of G's and D's variables, computed without initialising anything."""
    labels = jnp.zeros((4,), jnp.int32) if num_classes else None
    g = jax.eval_shape(lambda: generator.init(jax.random.key(0), jnp.zeros((4, latent_dim)),
                                              labels, train=False))
    d = jax.eval_shape(lambda: discriminator.init(
        jax.random.key(0), jnp.zeros((4, resolution, resolution, channels)), labels, train=False))
    return g, d


# --- parameter counts --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_parameter_counts_equal_nvlabs(name):
    (z, c, r, ch, m, base, cmax, arch), expected = REFERENCE_COUNTS[name]
    g = sg.StyleGAN2Generator(r, ch, z, z, m, num_classes=c, channel_base=base, channel_max=cmax)
    d = sg.StyleGAN2Discriminator(r, base, cmax, arch, num_classes=c)
    gv, dv = abstract_variables(g, d, r, ch, z, c)
    assert (num_params(gv), num_params(dv)) == expected
    assert "w_avg" in gv and "w_avg" not in gv["params"]  # a buffer, as in NVlabs


@pytest.mark.parametrize("name", sorted(CONFIGS) + ["cifar10_conditional"])
def test_configs_build_the_counted_networks(name):
    if name == "cifar10_conditional":
        config = cifar10_stylegan2.get_config()
        config.model.num_classes = 10
    else:
        config = CONFIGS[name].get_config()
    sg.check_config(config)
    (z, c, r, ch, m, base, cmax, arch), expected = REFERENCE_COUNTS[name]
    s, d = config.stylegan2, config.data
    assert (config.model.latent_dim, s.w_dim, config.model.num_classes, d.resolution, d.channels,
            s.mapping_layers, s.channel_base, s.channel_max, s.d_architecture) == (
        z, z, c, r, ch, m, base, cmax, arch)
    gv, dv = abstract_variables(*sg.build_models(config), r, ch, z, c)
    assert (num_params(gv), num_params(dv)) == expected


# --- equalized layers and resampling -----------------------------------------------------------

def test_equal_dense_scales_weights_and_bias_at_run_time():
    layer = eq.EqualDense(3, lr_multiplier=0.01, bias_init=0.5)
    x = jax.random.normal(jax.random.key(0), (5, 8))
    variables = layer.init(jax.random.key(1), x)
    kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
    np.testing.assert_allclose(bias, 50.0)  # stored bias_init / lr_mul: effective bias 0.5
    assert 50 < float(jnp.std(kernel)) < 200  # stored N(0, 1/lr_mul^2)
    np.testing.assert_allclose(layer.apply(variables, x),
                               x @ kernel * (0.01 / math.sqrt(8)) + 0.5, rtol=1e-5, atol=1e-6)


def test_equal_conv_output_has_unit_scale_and_lrelu_gain():
    layer = eq.EqualConv(64, 3, activation="lrelu")
    x = jax.random.normal(jax.random.key(0), (8, 16, 16, 32))
    variables = layer.init(jax.random.key(1), x)
    y = layer.apply(variables, x)
    assert y.shape == (8, 16, 16, 64)
    # pre-activation variance ~1, lrelu(0.2) * sqrt(2) keeps the second moment at (1 + 0.04)
    assert abs(float(jnp.mean(jnp.square(y))) - 1.04) < 0.1


def test_pixel_norm_gives_unit_second_moment():
    x = 3.0 * jax.random.normal(jax.random.key(0), (4, 5, 7))
    np.testing.assert_allclose(jnp.mean(jnp.square(eq.pixel_norm(x)), axis=-1), 1.0, rtol=1e-5)


def test_minibatch_stddev_known_values_and_batch_split_invariance():
    x = jnp.arange(4 * 2 * 2 * 2, dtype=jnp.float32).reshape(4, 2, 2, 2)
    y = eq.minibatch_stddev(x, group_size=2)
    assert y.shape == (4, 2, 2, 3)
    # groups {0, 1} and {2, 3}: each pair differs by 8 everywhere -> population std 4
    np.testing.assert_allclose(y[..., 2], 4.0, rtol=1e-6)
    np.testing.assert_array_equal(y[..., :2], x)
    z = jax.random.normal(jax.random.key(0), (8, 4, 4, 6))
    whole = eq.minibatch_stddev(z, 4, num_features=2)
    halves = jnp.concatenate([eq.minibatch_stddev(z[:4], 4, 2), eq.minibatch_stddev(z[4:], 4, 2)])
    np.testing.assert_array_equal(whole, halves)
    assert whole.shape == (8, 4, 4, 8)
    np.testing.assert_allclose(eq.minibatch_stddev(z[:2], 4)[..., -1],
                               eq.minibatch_stddev(z[:2], 2)[..., -1])  # group = min(4, batch)
    with pytest.raises(ValueError, match="group size 4 must divide the batch size 6"):
        eq.minibatch_stddev(jnp.zeros((6, 4, 4, 2)), 4)


def test_box_filter_downsampling_is_average_pooling():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    pooled = x.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(eq.downsample_2x(x, (1, 1)), pooled, rtol=1e-6, atol=1e-6)
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    conv_then_pool = eq.conv2d(x, kernel).reshape(2, 4, 2, 4, 2, 5).mean(axis=(2, 4))
    np.testing.assert_allclose(eq.conv2d(x, kernel, down=True, resample_filter=(1, 1)),
                               conv_then_pool, rtol=1e-5, atol=1e-5)


def test_fir_resampling_keeps_constant_images_constant_away_from_borders():
    x = jnp.ones((1, 8, 8, 2))
    up = eq.upsample_2x(x)
    down = eq.downsample_2x(x)
    assert up.shape == (1, 16, 16, 2) and down.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(up[:, 2:-2, 2:-2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(down[:, 1:-1, 1:-1], 1.0, rtol=1e-6)
    # [1, 3, 3, 1] / 8 at the borders: the zero padding removes 1/8 of each tap row
    np.testing.assert_allclose(down[0, 0, 1:-1, 0], 7 / 8, rtol=1e-6)


# --- modulated convolution ---------------------------------------------------------------------

def _per_example_conv(x, weights):
    """conv of each example with its own (k, k, in, out) weight, 'same' padding."""
    k = weights.shape[1]
    return jax.vmap(lambda xi, wi: lax.conv_general_dilated(
        xi[None], wi, (1, 1), [(k // 2, k // 2)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))[0])(x, weights)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_per_example_weight_conv(demodulate):
    kx, kw, ks = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 6, 6, 4))
    kernel = jax.random.normal(kw, (3, 3, 4, 5))
    styles = 1.0 + 0.5 * jax.random.normal(ks, (3, 4))
    weights = kernel[None] * styles[:, None, None, :, None]  # (B, k, k, in, out)
    if demodulate:
        weights = weights * lax.rsqrt(jnp.sum(jnp.square(weights), axis=(1, 2, 3),
                                              keepdims=True) + 1e-8)
    np.testing.assert_allclose(sg.modulated_conv(x, kernel, styles, demodulate),
                               _per_example_conv(x, weights), rtol=2e-5, atol=2e-5)


def test_upsampling_modulated_conv_is_zero_insertion_full_conv_then_fir():
    """up=True: zero insertion, the full convolution with each example's (demodulated) weight,
    then the [1, 3, 3, 1] filter with gain 4 and padding (1, 1) (NVlabs conv2d_resample, up=2;
    also checked once with torch against their modulated_conv2d: equal to 6e-7)."""
    kx, kw, ks = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (2, 5, 5, 3))
    kernel = jax.random.normal(kw, (3, 3, 3, 4))
    styles = 1.0 + 0.5 * jax.random.normal(ks, (2, 3))
    weights = kernel[None] * styles[:, None, None, :, None]
    weights = weights * lax.rsqrt(jnp.sum(jnp.square(weights), axis=(1, 2, 3), keepdims=True)
                                  + 1e-8)
    u = jnp.zeros((2, 10, 10, 3)).at[:, ::2, ::2].set(x)
    full = jax.vmap(lambda ui, wi: lax.conv_general_dilated(
        ui[None], wi[::-1, ::-1], (1, 1), [(2, 2)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))[0])(u, weights)[:, :11, :11]
    expected = eq.fir_filter(full, (1, 3, 3, 1), (1, 1), gain=4.0)
    assert expected.shape == (2, 10, 10, 4)
    np.testing.assert_allclose(sg.modulated_conv(x, kernel, styles, up=True), expected,
                               rtol=2e-5, atol=2e-5)


def test_demodulated_outputs_have_unit_std_for_unit_inputs():
    """Demodulation rescales each output channel to unit std whatever the styles' scale."""
    kx, kw, ks = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (4, 32, 32, 64))
    kernel = jax.random.normal(kw, (3, 3, 64, 32))
    styles = 10.0 * jnp.exp(jax.random.normal(ks, (4, 64)))
    interior = sg.modulated_conv(x, kernel, styles)[:, 1:-1, 1:-1]
    std = jnp.std(interior, axis=(1, 2))  # per example and channel
    assert 0.85 < float(jnp.min(std)) and float(jnp.max(std)) < 1.15


# --- generator and discriminator ---------------------------------------------------------------

TINY = dict(latent_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def tiny_generator(resolution=8, channels=1, **kw):
    return sg.StyleGAN2Generator(resolution, channels, **{**TINY, **kw})


def init_generator(g, batch=4, noise_strength=0.5):
    """G's variables with a random w_avg and non-zero noise strengths (zeros after init)."""
    variables = jax.jit(g.init, static_argnames="train")(
        jax.random.key(0), jnp.zeros((batch, g.latent_dim)), train=False)
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.full_like(p, noise_strength)
        if getattr(path[-1], "key", "") == "noise_strength" else p, variables["params"])
    w_avg = jax.random.normal(jax.random.key(1), (g.w_dim,))
    return {"params": params, "w_avg": {"mapping": {"w_avg": w_avg}}}


def jitted(module):
    """module.apply, compiled (the eager op-by-op apply is slow on CPU)."""
    return jax.jit(module.apply, static_argnames=("train", "mutable"))


@functools.cache
def shared_generator():
    """(G, its compiled apply, variables): one 8 px G whose compilations the tests share."""
    g = tiny_generator()
    return g, jitted(g), init_generator(g)


def latents_and_keys(n, latent_dim=16, seed=0):
    z = jax.random.normal(jax.random.key(seed), (n, latent_dim))
    keys = jax.random.split(jax.random.key(seed + 100), n)
    return z, keys


@pytest.mark.parametrize("resolution, channels", [(16, 1), (32, 3)])
def test_output_shapes(resolution, channels):
    g = tiny_generator(resolution, channels)
    d = sg.StyleGAN2Discriminator(resolution, 128, 16)
    z, keys = latents_and_keys(4)
    g_vars, d_vars = abstract_variables(g, d, resolution, channels, 16)
    images = jax.eval_shape(functools.partial(g.apply, train=False, noise_keys=keys), g_vars, z)
    assert images.shape == (4, resolution, resolution, channels)
    assert jax.eval_shape(d.apply, d_vars, images).shape == (4,)
    assert g.num_ws == 2 * int(math.log2(resolution)) - 2


def test_generator_outputs_are_finite_and_vary():
    g, g_apply, g_vars = shared_generator()
    z, keys = latents_and_keys(4)
    images = g_apply(g_vars, z, train=False, noise_keys=keys)
    assert images.shape == (4, 8, 8, 1) and bool(jnp.all(jnp.isfinite(images)))
    assert float(jnp.min(jnp.std(images, axis=(1, 2, 3)))) > 0.01
    assert not np.allclose(images[0], images[1], atol=1e-3)


@pytest.mark.slow  # 1 min at load 5
def test_conditional_networks_use_labels():
    g = tiny_generator(num_classes=3)
    d = sg.StyleGAN2Discriminator(8, 128, 16, num_classes=3, mapping_layers=2)
    z, keys = latents_and_keys(4)
    # each example twice, with its label and with another one: one compiled call per network
    z, keys = jnp.concatenate([z, z]), jnp.concatenate([keys, keys])
    labels = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
    init = lambda module, *args, **kw: jax.jit(functools.partial(
        module.init_with_output, train=False, **kw))(jax.random.key(0), *args)
    images, _ = init(g, z, labels, noise_keys=keys)
    assert not np.allclose(images[:4], images[4:], atol=1e-3)
    logits, _ = init(d, jnp.concatenate([images[:4], images[:4]]), labels)
    assert not np.allclose(logits[:4], logits[4:], atol=1e-4)


def test_truncation_psi_zero_gives_w_avg_for_every_latent():
    g, g_apply, g_vars = shared_generator()
    z, _ = latents_and_keys(4)
    same_noise = jnp.stack([jax.random.key(7)] * 4)
    images = g_apply(g_vars, z, train=False, noise_keys=same_noise, truncation_psi=0.0)
    np.testing.assert_allclose(images, jnp.broadcast_to(images[:1], images.shape), atol=1e-6)
    untruncated = g_apply(g_vars, z, train=False, noise_keys=same_noise)
    assert not np.allclose(untruncated[0], untruncated[1])
    np.testing.assert_allclose(g_apply(g_vars, z, train=False, noise_keys=same_noise,
                                       truncation_psi=1.0), untruncated, atol=1e-5)


def test_style_mixing_cutoffs():
    g, g_apply, g_vars = shared_generator()
    z, keys = latents_and_keys(4)
    z2, _ = latents_and_keys(4, seed=5)
    plain = g_apply(g_vars, z, train=False, noise_keys=keys)
    n = g.num_ws
    no_mix = g_apply(g_vars, z, train=False, noise_keys=keys, mix_z=z2, mix_cutoff=jnp.full(4, n))
    np.testing.assert_array_equal(no_mix, plain)
    all_mix = g_apply(g_vars, z, train=False, noise_keys=keys, mix_z=z2, mix_cutoff=jnp.zeros(4))
    np.testing.assert_allclose(all_mix, g_apply(g_vars, z2, train=False, noise_keys=keys),
                               atol=1e-6)
    # per-example cutoffs: example 0 unmixed, the others mixed from layer 2 on
    partly = g_apply(g_vars, z, train=False, noise_keys=keys, mix_z=z2,
                     mix_cutoff=jnp.array([n, 2, 2, 2]))
    np.testing.assert_allclose(partly[0], plain[0], atol=1e-6)
    assert not np.allclose(partly[1:], plain[1:], atol=1e-3)


def test_noise_is_a_function_of_the_example_keys_only():
    g, g_apply, g_vars = shared_generator()
    z, keys = latents_and_keys(4)
    a = g_apply(g_vars, z, train=False, noise_keys=keys)
    np.testing.assert_array_equal(a, g_apply(g_vars, z, train=False, noise_keys=keys))
    halves = jnp.concatenate([g_apply(g_vars, z[:2], train=False, noise_keys=keys[:2]),
                              g_apply(g_vars, z[2:], train=False, noise_keys=keys[2:])])
    np.testing.assert_allclose(halves, a, rtol=1e-6, atol=1e-6)
    other = g_apply(g_vars, z, train=False, noise_keys=jax.random.split(jax.random.key(9), 4))
    assert not np.allclose(other, a, atol=1e-3)
    no_noise = g_apply(g_vars, z, train=False)
    assert not np.allclose(no_noise, a, atol=1e-3)


def test_w_avg_is_updated_only_in_training_and_only_from_the_main_latents():
    g, g_apply, g_vars = shared_generator()
    z, keys = latents_and_keys(4)
    z2, _ = latents_and_keys(4, seed=5)
    old = g_vars["w_avg"]["mapping"]["w_avg"]
    _, new = g_apply(g_vars, z, train=True, noise_keys=keys, mix_z=z2, mix_cutoff=jnp.ones(4),
                     mutable="w_avg")
    mapping = sg.MappingNetwork(16, 16, 2, track_w_avg=False)
    w = mapping.apply({"params": g_vars["params"]["mapping"]}, z)
    expected = jnp.mean(w, axis=0) + 0.995 * (old - jnp.mean(w, axis=0))
    np.testing.assert_allclose(new["w_avg"]["mapping"]["w_avg"], expected, rtol=1e-5, atol=1e-6)
    _, frozen = g_apply(g_vars, z, train=False, noise_keys=keys, mutable="w_avg")
    np.testing.assert_array_equal(frozen["w_avg"]["mapping"]["w_avg"], old)


def test_discriminator_rejects_unknown_architecture():
    d = sg.StyleGAN2Discriminator(8, 64, 8, architecture="skip")
    with pytest.raises(ValueError, match="resnet or orig"):
        d.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))


def test_resolution_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power-of-two"):
        sg.resolutions(28)
    config = digits_stylegan2.get_config()
    config.data.resolution = 28
    with pytest.raises(ValueError, match=r"^config\.data\.resolution"):
        sg.check_config(config)


@pytest.mark.parametrize("key, value, message", [
    ("train.batch_size", 6, r"^config\.stylegan2\.mbstd_group_size: 4 must divide"),
    ("stylegan2.d_architecture", "skip", r"^config\.stylegan2\.d_architecture"),
    ("stylegan2.style_mixing_prob", 1.5, r"^config\.stylegan2\.style_mixing_prob"),
    ("stylegan2.d_mapping_layers", 0, r"^config\.stylegan2\.d_mapping_layers"),
])
def test_config_checks_name_the_key(key, value, message):
    config = digits_stylegan2.get_config()
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=message):
        sg.check_config(config)


# --- task and training -------------------------------------------------------------------------

def tiny_config():
    config = digits_stylegan2.get_config()
    config.data.resolution = 8
    config.model.latent_dim = 16
    s = config.stylegan2
    s.w_dim, s.mapping_layers, s.channel_base, s.channel_max = 16, 2, 64, 16
    config.loss.r1_every = 2
    config.train.batch_size = 16
    config.train.num_steps = 4
    config.train.sample_every_steps = 0
    config.eval.every_steps = 0
    config.ema.start_step = 1
    config.sample.num = 4
    return config


def test_mixing_cutoffs_are_drawn_per_example():
    config = tiny_config()
    keys = jax.random.split(jax.random.key(0), 512)
    n = sg.num_ws(8)
    task = sg_task.build_task(config)
    cutoffs = np.asarray(task.mixing_cutoffs(keys))
    assert set(cutoffs) == set(range(1, n + 1))  # 1..num_ws-1 mixed, num_ws unmixed
    assert 0.8 < np.mean(cutoffs < n) < 0.97       # style_mixing_prob 0.9
    never = dataclasses.replace(task, style_mixing_prob=0.0)
    assert set(np.asarray(never.mixing_cutoffs(keys))) == {n}


@pytest.mark.slow  # 30 s of compiling; tests/test_train.py checks lazy R1's schedule quickly
def test_folded_lazy_r1_is_computed_only_on_its_steps():
    config = tiny_config()
    config.loss.r1_every = 4
    config.loss.r1_mode = "folded"
    task = sg_task.build_task(config)
    g_vars, d_vars = task.init(jax.random.key(0), (8, 8, 1))
    g_params, g_state = g_vars.pop("params"), g_vars
    d_params, d_state = d_vars.pop("params"), d_vars
    batch = {"image": jax.random.uniform(jax.random.key(1), (16, 8, 8, 1), minval=-1, maxval=1)}
    keys = jax.random.split(jax.random.key(2), 16)
    loss_fn = jax.jit(task.discriminator_loss)
    results = {s: loss_fn(d_params, d_state, g_params, g_state, batch, keys, jnp.int32(s), {})
               for s in (0, 3, 4)}  # R1 on steps s with s % 4 == 0 (NVlabs' batch_idx rule)
    r1 = {s: float(aux[1]["r1"]) for s, (_, aux) in results.items()}
    assert r1[0] > 0 and r1[3] == 0 and r1[4] == r1[0]
    loss = {s: float(l) for s, (l, _) in results.items()}
    np.testing.assert_allclose(loss[0] - loss[3], 0.5 * config.loss.r1_weight * 4 * r1[0],
                               rtol=1e-3, atol=1e-6)


@pytest.mark.slow  # 1 min at load 5
def test_sample_truncation_acts_in_w_space():
    task = sg_task.build_task(tiny_config())
    g_vars, _ = jax.jit(task.init, static_argnums=1)(jax.random.key(0), (8, 8, 1))
    g_params, g_state = g_vars.pop("params"), g_vars
    keys = jax.random.split(jax.random.key(3), 4)
    np.testing.assert_array_equal(task.latents(keys, 0.5), task.latents(keys))
    images = jax.jit(task.sample, static_argnames="truncation")(g_params, g_state, keys,
                                                               jnp.int32(0), truncation=0.0)
    # psi = 0: every latent maps to w_avg; only the per-example noise differs (zero strength at
    # init), so all samples are the same image
    np.testing.assert_allclose(images, jnp.broadcast_to(images[:1], images.shape), atol=1e-6)


def _train(config, steps, devices, step_fn=None):
    """(final state, D losses, the compiled step) of `steps` steps from the initial state."""
    run = run_lib.build_run(config, devices)
    step_fn = step_fn or run.train_step(donate=False)
    state = run.init_state()
    d = config.data
    source = make_source(d.name, d.resolution, d.channels)
    losses = []
    with BatchIterator(source, config.train.seed, 0, config.train.batch_size,
                       config.train.n_critic, 0, 1) as batches:
        for _ in range(steps):
            state, metrics = step_fn(state, parallel.put_batch(next(batches)[1], run.mesh))
            losses.append(float(metrics["d_loss"]))
    return state, losses, step_fn


@functools.cache
def tiny_run():
    """(run, compiled train step) of tiny_config() on one device, shared by the tests."""
    run = run_lib.build_run(tiny_config(), jax.devices()[:1])
    return run, run.train_step(donate=False)


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
        (state.g_params, state.d_params, state.g_state, state.g_opt_state, state.d_opt_state,
         state.ema_params)))]


@pytest.mark.slow  # 2 min at load 5; test_w_avg_is_updated_only_in_training... stays
def test_w_avg_moves_in_the_g_step_then_in_the_d_step():
    """NVlabs updates w_avg in every training-mode mapping call: after one step (no path
    length) it has moved twice, by Gmain's latents through the G it starts from, then by Dmain's
    through the G Gmain updated (the style mixing latents do not count)."""
    run, step_fn = tiny_run()
    state = run.init_state()
    with BatchIterator(make_source("digits", 8, 1), 0, 0, 16, 1, 0, 1) as batches:
        after, _ = step_fn(state, parallel.put_batch(next(batches)[1], run.mesh))
    step_key = jax.random.fold_in(state.key, 0)
    mapping = sg.MappingNetwork(16, 16, 2, track_w_avg=False)
    w_avg = state.g_state["w_avg"]["mapping"]["w_avg"]
    # the G step's keys (n_critic) with G before the step, then the D step's (critic iteration
    # 0) with G after it
    for purpose, g_params in ((1, state.g_params), (0, after.g_params)):
        z = run.task.latents(_keys(step_key, purpose))
        w = mapping.apply({"params": g_params["mapping"]}, z)
        w_avg = jnp.mean(w, axis=0) + 0.995 * (w_avg - jnp.mean(w, axis=0))
    np.testing.assert_allclose(after.g_state["w_avg"]["mapping"]["w_avg"], w_avg, rtol=1e-5,
                               atol=1e-6)


def _keys(step_key, purpose, n=16):
    """The train step's per-example keys of one phase (purpose: its fold_in after the step's)."""
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(step_key, purpose), i))(
        jnp.arange(n))


def lazy_config():
    """tiny_config() with lazy R1 and path length, both every 4 steps (NVlabs' G_reg_interval)."""
    config = tiny_config()
    config.loss.r1_every = 4
    config.loss.pl_weight, config.loss.pl_every = 2.0, 4
    return config


@functools.cache
def lazy_run():
    """(run, compiled train step, the first 8 (state, batch, after, metrics)) of lazy_config()
    on one device."""
    run = run_lib.build_run(lazy_config(), jax.devices()[:1])
    step_fn = run.train_step(donate=False)
    state, steps = run.init_state(), []
    with BatchIterator(make_source("digits", 8, 1), 0, 0, 16, 1, 0, 1) as batches:
        for _ in range(8):
            batch = parallel.put_batch(next(batches)[1], run.mesh)
            after, metrics = step_fn(state, batch)
            steps.append((state, batch, after, metrics))
            state = after
    return run, step_fn, steps


@pytest.mark.slow  # a StyleGAN2 step with both double backward passes: a minute of compiling
def test_lazy_phases_run_on_nvlabs_steps():
    """NVlabs runs a phase of interval k on batch_idx % k == 0 (training_loop.py): over steps
    0..7 with r1_every = pl_every = 4, Greg and Dreg run (a second Adam update, a nonzero
    penalty) on steps 0 and 4 only."""
    _, _, steps = lazy_run()
    g_updates = [int(a.g_opt_state[0].count - s.g_opt_state[0].count) for s, _, a, _ in steps]
    d_updates = [int(a.d_opt_state[0].count - s.d_opt_state[0].count) for s, _, a, _ in steps]
    assert g_updates == d_updates == [2, 1, 1, 1, 2, 1, 1, 1]
    assert [float(m["pl"]) > 0 for *_, m in steps] == [True, False, False, False] * 2
    assert [float(m["r1"]) > 0 for *_, m in steps] == [True, False, False, False] * 2


@pytest.mark.slow  # compiles the step and the phases by hand: minutes on 2 loaded cores
@pytest.mark.parametrize("index", [0, 1])  # a step with both regularisers, and one without
def test_a_step_is_nvlabs_phases_in_order(index):
    """One step equals NVlabs' phases of one batch_idx composed by hand (training_loop.py,
    loss.py): Gmain on D before the step, Greg on the G Gmain left (on steps divisible by 4),
    Dmain on fakes of the G both left, Dreg after it; each with its own keys, all on the same
    real batch; w_avg moved by Gmain's, Greg's and Dmain's mapping calls in that order."""
    run, _, steps = lazy_run()
    state, batch, after, metrics = steps[index]
    task, step = run.task, state.step
    step_key = jax.random.fold_in(state.key, step)
    real = jax.tree.map(lambda x: images.to_float(x[0]), jax.device_get(batch))
    reg = int(step) % 4 == 0

    def adam(tx, grads, opt, params):
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    def phases(state):
        g, g_opt, g_state, task_state = (state.g_params, state.g_opt_state, state.g_state,
                                         state.task_state)
        grads, (writes, _) = jax.grad(task.generator_loss, has_aux=True)(
            g, g_state, state.d_params, state.d_state, real, _keys(step_key, 1), step, task_state)
        g_state = writes["g_state"]
        g, g_opt = adam(run.g_tx, grads, g_opt, g)
        if reg:
            grads, (writes, _) = jax.grad(task.g_reg_loss, has_aux=True)(
                g, g_state, _keys(step_key, 3), step, task_state)
            g_state = {**g_state, "w_avg": writes["g_state/w_avg"]}
            task_state = {"pl_mean": writes["task_state/pl_mean"]}
            g, g_opt = adam(run.g_tx, grads, g_opt, g)
        grads, (writes, d_metrics) = jax.grad(task.discriminator_loss, has_aux=True)(
            state.d_params, state.d_state, g, g_state, real, _keys(step_key, 0), step, task_state)
        g_state = {**g_state, "w_avg": writes["g_state/w_avg"]}
        d, d_opt = adam(run.d_tx, grads, state.d_opt_state, state.d_params)
        if reg:
            grads, _ = jax.grad(task.r1_loss, has_aux=True)(
                d, writes["d_state"], real, _keys(step_key, 2), step, task_state)
            d, d_opt = adam(run.d_tx, grads, d_opt, d)
        return g, d, g_state, task_state, d_metrics["d_loss"]

    g, d, g_state, task_state, d_loss = jax.jit(jax.shard_map(
        phases, mesh=run.mesh, in_specs=P(), out_specs=P()))(state)
    for x, y in zip(jax.tree.leaves((after.g_params, after.d_params, after.g_state,
                                     after.task_state)),
                    jax.tree.leaves((g, d, g_state, task_state)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["d_loss"], d_loss, rtol=1e-6)
    assert reg == (int(after.g_opt_state[0].count) - int(state.g_opt_state[0].count) == 2)


def test_training_lowers_d_loss_and_is_deterministic():
    config = tiny_config()
    state, d_losses, step_fn = _train(config, 8, jax.devices()[:1], tiny_run()[1])
    assert d_losses[-1] < d_losses[0] - 0.1, d_losses
    assert all(np.all(np.isfinite(x)) for x in _leaves(state))
    assert not np.array_equal(state.g_state["w_avg"]["mapping"]["w_avg"], 0.0)  # tracked
    # The EMA generator takes G's w_avg as it is (NVlabs copies buffers into G_ema), while its
    # params are averaged.
    np.testing.assert_array_equal(state.ema_state["w_avg"]["mapping"]["w_avg"],
                                  state.g_state["w_avg"]["mapping"]["w_avg"])
    assert not np.array_equal(jax.tree.leaves(state.ema_params)[0],
                              jax.tree.leaves(state.g_params)[0])
    again, again_losses, _ = _train(config, 8, jax.devices()[:1], step_fn)  # init and data again
    assert again_losses == d_losses
    for x, y in zip(_leaves(state), _leaves(again)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_eight_devices_match_one_device():
    """Noise from per-example keys and minibatch stddev over consecutive examples: the device
    count does not change the math (local batch 2, mbstd group min(4, 2) = 2 on both)."""
    config = tiny_config()
    config.stylegan2.mbstd_group_size = 2
    one, _, _ = _train(config, 2, jax.devices()[:1])
    eight, _, _ = _train(config, 2, jax.devices()[:8])
    for x, y in zip(_leaves(one), _leaves(eight)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


# --- optional: NVlabs' networks with the same weights --------------------------------------------

def _nvlabs_networks():
    """training.networks of a stylegan2-ada-pytorch checkout at $GAN_JAX_STYLEGAN2_ADA_REPO."""
    import os
    import sys

    pytest.importorskip("torch")
    repo = os.environ.get("GAN_JAX_STYLEGAN2_ADA_REPO")
    if not repo or not os.path.isfile(os.path.join(repo, "training", "networks.py")):
        pytest.skip("set GAN_JAX_STYLEGAN2_ADA_REPO to a checkout of NVlabs/stylegan2-ada-pytorch")
    sys.path.insert(0, repo)
    try:
        from training import networks
    finally:
        sys.path.remove(repo)
    return networks


def _ported(t_g, t_d, num_mapping_layers, resolution):
    """Our G and D variables holding NVlabs' weights (same storage: no rescaling needed)."""
    t = lambda x: jnp.asarray(x.detach().numpy())
    dense = lambda m: {"kernel": t(m.weight).T, **({"bias": t(m.bias)} if m.bias is not None
                                                   else {})}
    conv = lambda m: {"kernel": t(m.weight).transpose(2, 3, 1, 0),
                      **({"bias": t(m.bias)} if m.bias is not None else {})}
    synthesis = {}
    for res in t_g.synthesis.block_resolutions:
        block = getattr(t_g.synthesis, f"b{res}")
        if res == 4:
            synthesis["const"] = t(block.const).transpose(1, 2, 0)
        for name in (["conv0"] if res > 4 else []) + ["conv1"]:
            layer = getattr(block, name)
            synthesis[f"b{res}_{name}"] = {
                "affine": dense(layer.affine), "kernel": t(layer.weight).transpose(2, 3, 1, 0),
                "noise_strength": t(layer.noise_strength), "bias": t(layer.bias)}
        synthesis[f"b{res}_torgb"] = {"affine": dense(block.torgb.affine), **conv(block.torgb)}
    mapping = {f"fc{i}": dense(getattr(t_g.mapping, f"fc{i}")) for i in range(num_mapping_layers)}
    g_vars = {"params": {"mapping": mapping, "synthesis": synthesis},
              "w_avg": {"mapping": {"w_avg": t(t_g.mapping.w_avg)}}}
    d_params = {"fromrgb": conv(getattr(t_d, f"b{resolution}").fromrgb),
                "b4_conv": conv(t_d.b4.conv), "b4_fc": dense(t_d.b4.fc),
                "b4_out": dense(t_d.b4.out)}
    for res in t_d.block_resolutions:
        for name in ("conv0", "conv1", "skip"):
            d_params[f"b{res}_{name}"] = conv(getattr(getattr(t_d, f"b{res}"), name))
    return g_vars, {"params": d_params}


def test_nvlabs_weights_give_nvlabs_outputs():
    """With NVlabs' weights (random, biases and noise strengths perturbed) our G (no noise, with
    and without truncation) and D (one minibatch-stddev group) give their outputs: G to 3e-6,
    D to 3e-7 when last run (commit d72cc7d)."""
    networks = _nvlabs_networks()  # skips without GAN_JAX_STYLEGAN2_ADA_REPO
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    z_dim, res, ch, base, cmax, layers = 32, 16, 3, 512, 64, 2
    t_g = networks.Generator(z_dim=z_dim, c_dim=0, w_dim=z_dim, img_resolution=res,
                             img_channels=ch, mapping_kwargs=dict(num_layers=layers),
                             synthesis_kwargs=dict(channel_base=base, channel_max=cmax)).eval()
    t_d = networks.Discriminator(c_dim=0, img_resolution=res, img_channels=ch,
                                 channel_base=base, channel_max=cmax).eval()
    with torch.no_grad():
        for name, p in [*t_g.named_parameters(), *t_d.named_parameters()]:
            if name.endswith(("bias", "noise_strength")):
                p.add_(0.1 * torch.randn_like(p))
        t_g.mapping.w_avg.copy_(torch.randn_like(t_g.mapping.w_avg))
    g = sg.StyleGAN2Generator(res, ch, z_dim, z_dim, layers, channel_base=base, channel_max=cmax)
    d = sg.StyleGAN2Discriminator(res, base, cmax)
    g_vars, d_vars = _ported(t_g, t_d, layers, res)
    g_shapes, d_shapes = abstract_variables(g, d, res, ch, z_dim)
    assert jax.tree.structure(g_shapes) == jax.tree.structure(g_vars)
    assert jax.tree.structure(d_shapes) == jax.tree.structure(d_vars)
    z = torch.randn(4, z_dim)
    for psi in (1.0, 0.7):
        expected = t_g(z, None, truncation_psi=psi, noise_mode="none").detach().numpy()
        ours = g.apply(g_vars, jnp.asarray(z.numpy()), train=False, truncation_psi=psi)
        np.testing.assert_allclose(ours, expected.transpose(0, 2, 3, 1), rtol=1e-4, atol=2e-5)
    x = torch.randn(4, ch, res, res)
    expected = t_d(x, None)[:, 0].detach().numpy()
    np.testing.assert_allclose(d.apply(d_vars, jnp.asarray(x.numpy()).transpose(0, 2, 3, 1)),
                               expected, rtol=1e-4, atol=1e-5)


# --- path length regularisation and ADA (stylegan2-ada-pytorch training/loss.py, augment.py) ---

class LinearStyles(nn.Module):
    """A generator whose path lengths are known: ws = z on 2 layers, image = sum_l A_l ws_l;
    training-mode calls move 'w_avg' as the mapping network does (w = z)."""

    num_ws = 2
    matrices = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3) / 10  # A_l: (4 px, 3)

    def setup(self):
        self.w_avg = self.variable("w_avg", "w_avg", jnp.zeros, (3,))

    def styles(self, z, labels=None, train=True, **kwargs):
        if train:
            mean = jnp.mean(z, axis=0)
            self.w_avg.value = mean + 0.995 * (self.w_avg.value - mean)
        return jnp.broadcast_to(z[:, None], (z.shape[0], 2, z.shape[1]))

    def synthesize(self, ws, noise_keys=None):
        return jnp.einsum("bld,lpd->bp", ws, self.matrices).reshape(-1, 2, 2, 1)


def test_path_length_penalty_equals_a_hand_computation():
    from gan_jax import losses
    task = sg_task.StyleGAN2Task(LinearStyles(), None, losses.LOSSES["non_saturating"], 3,
                                 style_mixing_prob=0.0, pl_weight=2.0, pl_every=4)
    keys = jax.random.split(jax.random.key(0), 8)
    mesh = parallel.make_mesh(jax.devices()[:1])
    w_avg = jnp.array([1.0, -2.0, 3.0])
    loss_fn = jax.shard_map(
        lambda keys: task.g_reg_loss({}, {"w_avg": {"w_avg": w_avg}}, keys, jnp.int32(3),
                                     {"pl_mean": jnp.float32(0.5)}),
        mesh=mesh, in_specs=P(), out_specs=P())
    loss, (writes, metrics) = jax.jit(loss_fn)(keys)
    # by hand: the first 8 / pl_batch_shrink examples; y ~ N(0, 1) / sqrt(H W) from each key's
    # PL_NOISE stream; the gradient w.r.t. layer l's w is A_l^T y
    lengths = []
    for k in keys[:4]:
        y = np.asarray(jax.random.normal(jax.random.fold_in(k, sg_task.PL_NOISE),
                                         (2, 2, 1))).reshape(4) / 2.0
        grads = [LinearStyles.matrices[l].T @ y for l in range(2)]
        lengths.append(np.sqrt(np.mean([np.sum(g ** 2) for g in grads])))
    lengths = np.array(lengths)
    pl_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
    penalty = np.mean((lengths - pl_mean) ** 2)
    np.testing.assert_allclose(float(writes["task_state/pl_mean"]), pl_mean, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["pl"]), penalty, rtol=1e-5)
    np.testing.assert_allclose(float(loss), 4 * 2.0 * penalty, rtol=1e-5)
    # w_avg moved once, by the w (= z) of the same first 4 examples (NVlabs' Gpl run_G)
    w = np.asarray(task.latents(keys[:4])).mean(axis=0)
    np.testing.assert_allclose(writes["g_state/w_avg"]["w_avg"], w + 0.995 * (w_avg - w),
                               rtol=1e-6)


def _key_data(x):
    return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x


@pytest.mark.slow  # ADA and path length in one tiny StyleGAN2: minutes of compiling on 2 cores
def test_ada_p_and_pl_mean_are_checkpointed_and_resume_bitwise(tmp_path, one_device):
    import json

    from gan_jax.train import train_and_evaluate

    config = tiny_config()
    a = config.augment
    a.kind, a.p, a.ada_target, a.ada_interval, a.ada_kimg = "ada", 0.5, 0.6, 1, 0.16
    config.loss.pl_weight, config.loss.pl_every = 2.0, 2
    config.train.log_every_steps = 1
    config.checkpoint.every_steps = 2
    first = train_and_evaluate(config, tmp_path / "first", devices=one_device, progress=False)
    config.train.num_steps = 2
    train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    config.train.num_steps = 4
    resumed = train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    for x, y in zip(jax.tree.leaves(jax.tree.map(_key_data, first)),
                    jax.tree.leaves(jax.tree.map(_key_data, resumed)), strict=True):
        np.testing.assert_array_equal(x, y)
    lines = [json.loads(line) for line in (tmp_path / "first" / "metrics.jsonl").open()]
    ps = [line["ada_p"] for line in lines]
    # each step moves p by sign(r_t - 0.6) * 16 / 160 = +-0.1, clamped at 0
    steps = np.diff([0.5] + ps)
    assert all(np.isclose(abs(s), 0.1, atol=1e-6) or (s < 0 and p == 0)
               for s, p in zip(steps, ps)), ps
    assert float(first.task_state["ada"]["p"]) == np.float32(ps[-1])
    assert [line["pl"] > 0 for line in lines] == [True, False, True, False]  # steps 0, 2
    assert float(first.task_state["pl_mean"]) > 0
