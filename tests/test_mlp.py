"""The MLP GAN: its unconditional parameters, and the class-conditional version (one-hot label
joined to z in G, projection in D)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.models import MODEL_CHECKS, build_models
from gan_jax.models.mlp import MLPDiscriminator, MLPGenerator


def _init(module, *args):
    return module.init(jax.random.key(0), *args)["params"]


def _shapes(params):
    return jax.tree_util.tree_map(lambda a: a.shape, params)


def test_unconditional_mlp_has_no_label_parameters():
    z = jnp.zeros((2, 5))
    g = _shapes(_init(MLPGenerator(4, 1, (6, 7)), z))
    d = _shapes(_init(MLPDiscriminator((6, 7)), jnp.zeros((2, 4, 4, 1))))
    assert g == {"Dense_0": {"kernel": (5, 6), "bias": (6,)},
                 "Dense_1": {"kernel": (6, 7), "bias": (7,)},
                 "Dense_2": {"kernel": (7, 16), "bias": (16,)}}
    assert d == {"Dense_0": {"kernel": (16, 6), "bias": (6,)},
                 "Dense_1": {"kernel": (6, 7), "bias": (7,)},
                 "Dense_2": {"kernel": (7, 1), "bias": (1,)}}


def test_conditional_generator_joins_the_one_hot_label_to_z():
    gen = MLPGenerator(4, 1, (6,), num_classes=3)
    z = jax.random.normal(jax.random.key(1), (3, 5))
    labels = jnp.array([0, 2, 1])
    params = _init(gen, z, labels)
    assert params["Dense_0"]["kernel"].shape == (5 + 3, 6)
    # the first layer sees [z, one_hot(y)]: its pre-activation is z @ W[:5] + W[5 + y] + b
    w, b = params["Dense_0"]["kernel"], params["Dense_0"]["bias"]
    hidden = jax.nn.relu(z @ w[:5] + w[5 + labels] + b)
    expected = jnp.tanh(hidden @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"])
    out = gen.apply({"params": params}, z, labels)
    np.testing.assert_allclose(out, expected.reshape(3, 4, 4, 1), rtol=1e-5, atol=1e-6)
    other = gen.apply({"params": params}, z, (labels + 1) % 3)
    assert out.shape == (3, 4, 4, 1) and not np.allclose(out, other)


def test_conditional_discriminator_adds_the_projection_term():
    disc = MLPDiscriminator((6,), num_classes=3)
    x = jax.random.normal(jax.random.key(2), (3, 4, 4, 1))
    labels = jnp.array([1, 0, 2])
    params = _init(disc, x, labels)
    h = jax.nn.leaky_relu(x.reshape(3, -1) @ params["Dense_0"]["kernel"]
                          + params["Dense_0"]["bias"], 0.2)
    psi = (h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"])[:, 0]
    projection = jnp.sum(params["projection"]["embedding"][labels] * h, axis=-1)
    np.testing.assert_allclose(disc.apply({"params": params}, x, labels), psi + projection,
                               rtol=1e-5, atol=1e-6)
    assert params["projection"]["embedding"].shape == (3, 6)


def test_conditional_mlp_config_builds_and_dcgan_still_refuses_labels(tiny_config):
    tiny_config.model.num_classes = 10
    with pytest.raises(ValueError, match=r"^config.model.num_classes: model 'dcgan' is "
                                         r"unconditional; set it to 0 or use model.name='mlp', "
                                         r"'resnet' or 'stylegan2'$"):
        MODEL_CHECKS["dcgan"](tiny_config)
    tiny_config.model.name = "mlp"
    tiny_config.model.hidden_dims = (8,)
    MODEL_CHECKS["mlp"](tiny_config)
    generator, discriminator = build_models(tiny_config)
    assert generator.num_classes == discriminator.num_classes == 10
