"""pix2pix / CycleGAN networks (gan_jax/models/pix2pix.py) against the reference,
junyanz/pytorch-CycleGAN-and-pix2pix."""

import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gan_jax.models import pix2pix
from gan_jax.models.layers import ConvTranspose

KEYS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _abstract_variables(model, shape):
    return jax.eval_shape(lambda: model.init(KEYS, jnp.zeros(shape), train=False))


def _num_params(model, shape) -> int:
    return sum(x.size for x in jax.tree.leaves(_abstract_variables(model, shape)["params"]))


def _init(model, shape, seed=0):
    """The model's variables, drawn with NumPy as the reference initialises them (kernels
    N(0, 0.02), BN scales N(1, 0.02), biases and means 0, variances 1): nothing to compile."""
    rng = np.random.default_rng(seed)
    fill = {"kernel": lambda s: rng.normal(0.0, 0.02, s), "scale": lambda s: rng.normal(1, 0.02, s),
            "bias": np.zeros, "mean": np.zeros, "var": np.ones}
    flat = flax.traverse_util.flatten_dict(_abstract_variables(model, shape))
    return flax.traverse_util.unflatten_dict(
        {k: jnp.asarray(fill[k[-1]](v.shape), jnp.float32) for k, v in flat.items()})


@functools.cache
def _jitted_apply(model):
    """model.apply under jit, one per model, so calls with the same arguments compile once."""
    return jax.jit(model.apply, static_argnames=("train", "mutable"))


def _apply(model, variables, x, train, key=None, **kwargs):
    """model.apply under jit."""
    rngs = None if key is None else {"dropout": jax.random.key(key)}
    return _jitted_apply(model)(variables, x, train=train, rngs=rngs, **kwargs)


# The first four are the figures (counted from the reference's layer definitions, see the
# module docstring); the others follow from the same definitions: resnet_6blocks is resnet_9blocks
# less 3 residual blocks of 2 x (256*256*9 + 256); unet_128 is unet_256 less one middle 8ngf level
# (512*512*16 + 1024 + 1024*512*16 + 1024); PixelGAN is 3*64+64 + 64*128+128 + 128+1 with
# instance norm, and 6*64+64 + 64*128 + 2*128 + 128 with batch norm (its last conv then has no
# bias).
@pytest.mark.parametrize("name,kwargs,shape,expected", [
    ("resnet_9blocks", dict(norm="instance"), (1, 256, 256, 3), 11_378_179),
    ("resnet_9blocks", dict(norm="instance", dropout=True), (1, 256, 256, 3), 11_378_179),
    ("unet_256", dict(norm="batch"), (1, 256, 256, 3), 54_413_955),
    ("resnet_6blocks", dict(norm="instance"), (1, 128, 128, 3), 7_837_699),
    ("unet_128", dict(norm="batch"), (1, 128, 128, 3), 41_828_995),
])
def test_generator_parameter_counts_equal_the_reference(name, kwargs, shape, expected):
    assert _num_params(pix2pix.GENERATORS[name](ngf=64, **kwargs), shape) == expected


@pytest.mark.parametrize("name,norm,channels,expected", [
    ("basic", "instance", 3, 2_764_737),
    ("basic", "batch", 6, 2_768_705),
    ("pixel", "instance", 3, 8_705),
    ("pixel", "batch", 6, 9_024),
])
def test_discriminator_parameter_counts_equal_the_reference(name, norm, channels, expected):
    model = pix2pix.DISCRIMINATORS[name](ndf=64, norm=norm)
    assert _num_params(model, (1, 256, 256, channels)) == expected


def test_normal_init_draws_the_same_values_as_flax():
    key = jax.random.key(11)
    np.testing.assert_array_equal(pix2pix.normal_init(0.02)(key, (16, 8)),
                                  nn.initializers.normal(0.02)(key, (16, 8)))
    np.testing.assert_array_equal(pix2pix.normal_init(0.02, 1.0)(key, (8,)),
                                  1.0 + nn.initializers.normal(0.02)(key, (8,)))


def test_dropout_draws_the_same_mask_as_flax():
    x = jnp.arange(1.0, 49.0).reshape(2, 4, 6)
    outs = [module(0.5, deterministic=False).apply({}, x, rngs={"dropout": jax.random.key(12)})
            for module in (nn.Dropout, pix2pix.Dropout)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert set(np.unique(outs[1] / (2 * x)).tolist()) == {0.0, 1.0}


def test_init_as_the_reference():
    """Kernels ~ N(0, 0.02), biases 0, BatchNorm scales ~ N(1, 0.02), instance norm param-free."""
    model = pix2pix.UNetGenerator(num_downs=5, ngf=32)
    params = jax.jit(lambda key: model.init({"params": key}, jnp.zeros((1, 32, 32, 3)),
                                            train=False))(jax.random.key(0))["params"]
    flat = flax.traverse_util.flatten_dict(params)
    kernels = np.concatenate([np.ravel(v) for k, v in flat.items() if k[-1] == "kernel"])
    scales = np.concatenate([np.ravel(v) for k, v in flat.items() if k[-1] == "scale"])
    assert abs(kernels.std() - 0.02) < 2e-4 and abs(kernels.mean()) < 1e-4
    assert abs(scales.std() - 0.02) < 2e-3 and abs(scales.mean() - 1) < 2e-3
    assert all(not np.any(v) for k, v in flat.items() if k[-1] == "bias")
    d = _abstract_variables(pix2pix.PatchGANDiscriminator(norm="instance"), (1, 64, 64, 3))
    assert set(d) == {"params"}
    assert not any(k[-1] == "scale" for k in flax.traverse_util.flatten_dict(d["params"]))


@pytest.mark.parametrize("name,ngf,kwargs,size", [
    ("unet_256", 64, {}, 256), ("resnet_9blocks", 64, {}, 256),
    ("unet_128", 64, {}, 128), ("resnet_6blocks", 64, {}, 128),
    (None, 64, dict(num_downs=5), 32), ("resnet_6blocks", 64, {}, 32),
])
def test_generator_output_shapes(name, ngf, kwargs, size):
    model = (pix2pix.GENERATORS[name](ngf=ngf, out_channels=2) if name
             else pix2pix.UNetGenerator(ngf=ngf, out_channels=2, **kwargs))
    x = jnp.zeros((2, size, size, 3))
    variables = _abstract_variables(model, x.shape)
    out, _ = jax.eval_shape(lambda v: model.apply(v, x, train=True, rngs=KEYS,
                                                  mutable="batch_stats"), variables)
    assert out.shape == (2, size, size, 2)


@pytest.mark.parametrize("size,n_layers,logits", [(256, 3, 30), (128, 3, 14), (32, 3, 2),
                                                  (32, 1, 14)])
def test_patchgan_output_shapes(size, n_layers, logits):
    model = pix2pix.PatchGANDiscriminator(n_layers=n_layers, norm="instance")
    x = jnp.zeros((2, size, size, 6))
    out = jax.eval_shape(lambda v: model.apply(v, x, train=True),
                         _abstract_variables(model, x.shape))
    assert out.shape == (2, logits, logits)


def test_small_generators_compute_images_in_range():
    x = jax.random.uniform(jax.random.key(2), (2, 32, 32, 3), minval=-1, maxval=1)
    for model in (pix2pix.UNetGenerator(num_downs=5, ngf=4),
                  pix2pix.ResNetTranslator(n_blocks=2, ngf=4)):
        out, _ = _apply(model, _init(model, x.shape), x, True, 1, mutable="batch_stats")
        assert out.shape == x.shape and np.all(np.abs(out) <= 1) and np.std(out) > 0


def _receptive_field(model, size, out_pos):
    """(height, width, number of nonzero pixels) of the input support of one output logit."""
    x = jax.random.normal(jax.random.key(3), (1, size, size, 3))
    variables = _init(model, x.shape)
    grad = jax.jit(jax.grad(lambda x: model.apply(variables, x, train=False)[0, out_pos, out_pos])
                   )(x)
    rows, cols = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, rows.size


@pytest.mark.parametrize("n_layers,field", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(n_layers, field):
    """One logit of the 3-layer PatchGAN sees exactly a 70x70 patch (BN in eval mode: local)."""
    model = pix2pix.PatchGANDiscriminator(ndf=4, n_layers=n_layers, norm="batch")
    assert _receptive_field(model, 128, 6) == (field, field, field * field)


def test_pixelgan_receptive_field_is_one_pixel():
    model = pix2pix.PixelGANDiscriminator(ndf=4, norm="batch")
    assert _receptive_field(model, 16, 7) == (1, 1, 1)


def test_unet_skips_carry_local_information():
    """With the bottleneck conv zeroed, the output still depends on the input, only through the
    skips: an output pixel then ignores the far corner, which it sees through the bottleneck."""
    model = pix2pix.UNetGenerator(num_downs=5, ngf=4, paper_test_time=False)
    x = jax.random.normal(jax.random.key(4), (1, 32, 32, 3))
    variables = _init(model, x.shape)
    cut = flax.core.copy(variables, {"params": {
        **variables["params"], "Conv_4": {"kernel": jnp.zeros_like(
            variables["params"]["Conv_4"]["kernel"])}}})

    def input_grad(v):
        grad = jax.jit(jax.grad(lambda x: model.apply(v, x, train=False)[0, 0, 0].sum()))(x)
        return np.abs(grad[0]).sum(-1)

    full, skips_only = input_grad(variables), input_grad(cut)
    assert full[31, 31] > 0
    assert skips_only[0, 0] > 0 and skips_only[31, 31] == 0


def test_unet_up_convs_take_the_concatenated_skip():
    """Every up conv but the innermost reads its level's skip and the level below: 2x features."""
    params = _init(pix2pix.UNetGenerator(num_downs=5, ngf=4), (1, 32, 32, 3))["params"]
    in_features = [params[f"ConvTranspose_{i}"]["kernel"].shape[3] for i in range(5)]
    out_features = [params[f"ConvTranspose_{i}"]["kernel"].shape[2] for i in range(5)]
    assert in_features == [32, 64, 32, 16, 8] and out_features == [32, 16, 8, 4, 3]


def test_instance_norm_models_treat_examples_independently():
    """An example's output does not depend on the others in its batch (instance norm), unlike
    with batch norm in training mode."""
    a, b, c = jax.random.normal(jax.random.key(5), (3, 1, 16, 16, 3))
    for model in (pix2pix.ResNetTranslator(n_blocks=1, ngf=4),
                  pix2pix.PatchGANDiscriminator(ndf=4, n_layers=1, norm="instance")):
        variables = _init(model, a.shape)
        first = [_apply(model, variables, jnp.concatenate([a, other]), True)[0]
                 for other in (b, c)]
        np.testing.assert_array_equal(first[0], first[1])
    model = pix2pix.ResNetTranslator(n_blocks=1, ngf=4, norm="batch")
    variables = _init(model, a.shape)
    first = [_apply(model, variables, jnp.concatenate([a, other]), True,
                    mutable="batch_stats")[0][0] for other in (b, c)]
    assert np.abs(first[0] - first[1]).max() > 1e-3


def _unet_output(model, variables, x, train, key):
    return np.asarray(_apply(model, variables, x, train, key, mutable="batch_stats")[0])


def test_unet_dropout_is_deterministic_given_the_key():
    model = pix2pix.UNetGenerator(num_downs=6, ngf=2)  # one dropout level (the 6th)
    x = jax.random.normal(jax.random.key(6), (2, 64, 64, 3))
    variables = _init(model, x.shape)
    np.testing.assert_array_equal(_unet_output(model, variables, x, True, 7),
                                  _unet_output(model, variables, x, True, 7))
    assert np.abs(_unet_output(model, variables, x, True, 7)
                  - _unet_output(model, variables, x, True, 8)).max() > 1e-4
    # The paper's test time is the training-mode forward pass (dropout on, batch statistics).
    np.testing.assert_array_equal(_unet_output(model, variables, x, False, 7),
                                  _unet_output(model, variables, x, True, 7))
    # Without dropout there is no level whose masks the key could change.
    plain = pix2pix.UNetGenerator(num_downs=6, ngf=2, dropout=False)
    np.testing.assert_array_equal(_unet_output(plain, variables, x, True, 7),
                                  _unet_output(plain, variables, x, True, 8))


def test_unet_eval_mode_uses_no_dropout_and_running_averages():
    model = pix2pix.UNetGenerator(num_downs=6, ngf=2, paper_test_time=False)
    x = jax.random.normal(jax.random.key(6), (2, 64, 64, 3))
    variables = _init(model, x.shape)
    out = _apply(model, variables, x, False)  # no dropout rng, batch_stats immutable
    single = _apply(model, variables, x[:1], False)
    np.testing.assert_allclose(out[:1], single, atol=1e-6)


def test_resnet_transposed_conv_is_pytorchs_output_padding_1():
    """ConvTranspose2d(k3, s2, p1, output_padding=1) is the adjoint of Conv2d(k3, s2, p1) on a
    2H x 2W input: our ConvTranspose with padding ((1, 0), (1, 0)) computes exactly that."""
    x = jax.random.normal(jax.random.key(9), (2, 5, 6, 4))
    layer = ConvTranspose(3, (3, 3), (2, 2), ((1, 0), (1, 0)), use_bias=False,
                          kernel_init=pix2pix.INIT)
    variables = jax.jit(layer.init)(jax.random.key(10), x)
    kernel = variables["params"]["kernel"]  # (kh, kw, out 3, in 4): HWIO of the strided conv

    def strided(y):
        return lax.conv_general_dilated(y, kernel, (2, 2), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    adjoint = jax.jit(lambda x: jax.vjp(strided, jnp.zeros((2, 10, 12, 3)))[1](x)[0])
    np.testing.assert_allclose(jax.jit(layer.apply)(variables, x), adjoint(x), atol=1e-5)


def test_reflect_pad_is_pytorchs_reflection_pad():
    x = jnp.arange(1.0, 4.0).reshape(1, 1, 3, 1)
    assert pix2pix.reflect_pad(x, 1)[0, 1, :, 0].tolist() == [2.0, 1.0, 2.0, 3.0, 2.0]


def test_bad_sizes_are_refused_with_the_rule():
    model = pix2pix.UNetGenerator(num_downs=5, ngf=2)
    with pytest.raises(ValueError, match=r"a U-Net with num_downs=5 takes NHWC images whose sides "
                                         r"are multiples of 32, got shape \(1, 48, 32, 3\)"):
        model.init(KEYS, jnp.zeros((1, 48, 32, 3)), train=False)
    with pytest.raises(ValueError, match=r"num_downs must be >= 5"):
        pix2pix.UNetGenerator(num_downs=4).init(KEYS, jnp.zeros((1, 16, 16, 3)), train=False)
    with pytest.raises(ValueError, match=r"unknown norm 'group'; use one of batch, instance"):
        pix2pix.ResNetTranslator(norm="group").init(KEYS, jnp.zeros((1, 8, 8, 3)), train=False)


def test_per_example_dropout_keys_by_vmap():
    """With instance norm, vmapping over examples and their own keys gives each example the
    output it gets alone with its key, whatever the batch around it."""
    model = pix2pix.UNetGenerator(num_downs=6, ngf=2, norm="instance")
    xs = jax.random.normal(jax.random.key(13), (3, 64, 64, 3))
    keys = jax.random.split(jax.random.key(14), 3)
    variables = _init(model, xs.shape)
    one = lambda x, key: model.apply(variables, x[None], train=True, rngs={"dropout": key})[0]
    batched = jax.jit(jax.vmap(one))(xs, keys)
    alone = jax.jit(one)(xs[1], keys[1])
    np.testing.assert_allclose(batched[1], alone, atol=1e-6)
    assert np.abs(jax.jit(one)(xs[1], keys[2]) - alone).max() > 1e-4


def test_resnet_dropout_draws_each_examples_masks_from_its_key():
    """pix2pix's ResNet G (the reference's resnet_9blocks without --no_dropout: dropout 0.5 in
    every block): example i's masks come from example_keys[i] alone."""
    model = pix2pix.ResNetTranslator(n_blocks=2, ngf=2, dropout=True)  # instance norm
    xs = jax.random.normal(jax.random.key(15), (3, 16, 16, 3))
    keys = jax.random.split(jax.random.key(16), 3)
    variables = _init(model, xs.shape)
    run = jax.jit(lambda m, x, k: m.apply(variables, x, train=True, example_keys=k),
                  static_argnums=0)
    batched = run(model, xs, keys)
    np.testing.assert_array_equal(batched, run(model, xs, keys))
    np.testing.assert_allclose(batched[1:2], run(model, xs[1:2], keys[1:2]), atol=1e-6)
    rolled = run(model, xs, jnp.roll(keys, 1))
    assert min(np.abs(rolled[i] - batched[i]).max() for i in range(3)) > 1e-3
    plain = model.clone(dropout=False)
    np.testing.assert_array_equal(run(plain, xs, keys), run(plain, xs, jnp.roll(keys, 1)))
