"""ResNet GANs (gan_jax/models/resnet.py): SNGAN and the class-conditional BigGAN-style model, and
the conditional sampling they enable (gan_jax/sample.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import losses, sample
from gan_jax.configs import cifar10_sngan, digits_biggan, digits_sngan
from gan_jax.models import build_models
from gan_jax.models.resnet import SelfAttention, SNDense
from gan_jax.run import build_run
from gan_jax.train import train_and_evaluate
from test_train import assert_bitwise_equal, leaves


def count_params(config):
    """(G, D) parameter counts of a config's models, from shapes only (nothing is computed)."""
    run = build_run(config, devices=jax.devices()[:1])
    state = run.abstract_state()
    size = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
    return size(state.g_params), size(state.d_params)


def _sngan(resolution, g_channels, d_channels, num_classes=0):
    config = cifar10_sngan.get_config()
    config.data.resolution = resolution
    config.model.g_channels, config.model.d_channels = g_channels, d_channels
    # SNGAN-32's D pools in its first two blocks only; the 48/64 px ones pool in every block
    config.model.d_down = (True, True, False, False) if resolution == 32 else (True,) * 5
    config.model.num_classes = num_classes
    return config


# torch-mimicry (kwotsin/mimicry a7fda06c), counted with torch: sum(p.numel() for p in
# net.parameters()) of SNGANGenerator32() / SNGANDiscriminator32(), SNGANGenerator48() /
# SNGANDiscriminator48(), SNGANGenerator64() / SNGANDiscriminator64() (all default arguments:
# nz 128; ngf 256, 512, 1024; ndf 128, 1024, 1024) and CGANPDGenerator32(num_classes=10) /
# CGANPDDiscriminator32(num_classes=10). Spectral-norm vectors are buffers there and the
# 'spectral' collection here: neither is counted.
MIMICRY = {
    "sngan32": ((32, (256,) * 4, (128,) * 4, 0), 4_276_739, 1_053_825),
    "sngan48": ((48, (512, 256, 128, 64), (64, 128, 256, 512, 1024), 0), 4_878_083, 10_141_441),
    "sngan64": ((64, (1024, 512, 256, 128, 64), (64, 128, 256, 512, 1024), 0), 12_220_675,
                10_141_441),
    "cgan_pd32": ((32, (256,) * 4, (128,) * 4, 10), 4_304_387, 1_055_105),
}


@pytest.mark.parametrize("name", sorted(MIMICRY))
def test_parameter_counts_equal_torch_mimicry(name):
    args, g_count, d_count = MIMICRY[name]
    assert count_params(_sngan(*args)) == (g_count, d_count)


def test_cifar10_sngan_config_is_the_published_network():
    assert count_params(cifar10_sngan.get_config()) == MIMICRY["sngan32"][1:]


def _tiny_conditional():
    config = digits_biggan.get_config()
    config.data.resolution = 8
    m = config.model
    m.g_channels, m.d_channels = (16, 16, 16), (16, 16, 16)
    m.latent_dim, m.shared_dim, m.attention_resolution = 12, 8, 4
    config.train.batch_size = 16
    config.train.num_steps = 4
    config.train.log_every_steps = 2
    config.train.sample_every_steps = 0
    config.checkpoint.every_steps = 2
    config.ema.start_step = 1
    config.eval.every_steps = 0
    return config


def _init(config, seed=0):
    g, d = build_models(config)
    labels = jnp.arange(4, dtype=jnp.int32) % max(config.model.num_classes, 1)
    z = jax.random.normal(jax.random.key(seed), (4, config.model.latent_dim))
    r = config.data.resolution
    g_vars = g.init(jax.random.key(1), z, labels, train=False)
    d_vars = d.init(jax.random.key(2), jnp.zeros((4, r, r, config.data.channels)), labels,
                    train=False)
    return g, d, g_vars, d_vars, z, labels


def _tiny_unconditional():
    config = digits_sngan.get_config()
    config.data.resolution = 8
    config.model.g_channels, config.model.d_channels = (16, 16, 16), (16, 16, 16)
    return config


def test_shapes_and_ranges():
    for config in (_tiny_conditional(), _tiny_unconditional()):
        g, d, g_vars, d_vars, z, labels = _init(config)
        images = g.apply(g_vars, z, labels, train=False)
        r, c = config.data.resolution, config.data.channels
        assert images.shape == (4, r, r, c) and float(jnp.max(jnp.abs(images))) <= 1.0
        assert d.apply(d_vars, images, labels, train=False).shape == (4,)
        assert "spectral" in d_vars and "spectral" not in g_vars or config.model.g_spectral_norm


def test_labels_condition_g_and_d():
    config = _tiny_conditional()
    g, d, g_vars, d_vars, z, _ = _init(config)
    zz = jnp.repeat(z[:1], 2, axis=0)
    images = g.apply(g_vars, zz, jnp.array([3, 7]), train=False)
    assert float(jnp.max(jnp.abs(images[0] - images[1]))) > 1e-4
    same = g.apply(g_vars, zz, jnp.array([3, 3]), train=False)
    # Equal rows of one batch may differ in the last bit on XLA:CPU (jax 0.10: up to 1.2e-7).
    np.testing.assert_allclose(same[0], same[1], rtol=0, atol=1e-6)
    logits = d.apply(d_vars, jnp.repeat(images[:1], 2, axis=0), jnp.array([3, 7]), train=False)
    assert abs(float(logits[0] - logits[1])) > 1e-6


def test_unconditional_models_ignore_labels():
    config = _tiny_unconditional()
    g, d, g_vars, _, z, _ = _init(config)
    np.testing.assert_array_equal(g.apply(g_vars, z, None, train=False),
                                  g.apply(g_vars, z, jnp.arange(4), train=False))


def test_spectral_norm_divides_by_the_top_singular_value():
    layer = SNDense(5)
    x = jnp.ones((1, 7))
    variables = layer.init(jax.random.key(0), x, update_stats=False)
    kernel = variables["params"]["kernel"]
    u0 = variables["spectral"]["u"]
    _, frozen = layer.apply(variables, x, update_stats=False, mutable=["spectral"])
    np.testing.assert_array_equal(frozen["spectral"]["u"], u0)  # eval never moves u
    for _ in range(30):  # power iteration converges over calls, as during training
        _, new = layer.apply(variables, x, update_stats=True, mutable=["spectral"])
        variables = {"params": variables["params"], **new}
    assert float(jnp.max(jnp.abs(variables["spectral"]["u"] - u0))) > 1e-3
    y = layer.apply(variables, jnp.eye(7), update_stats=False)  # rows: the normalised kernel
    sigma = np.linalg.svd(np.asarray(kernel), compute_uv=False)[0]
    np.testing.assert_allclose(np.asarray(y), np.asarray(kernel) / sigma, rtol=1e-4, atol=1e-6)
    assert abs(np.linalg.svd(np.asarray(y), compute_uv=False)[0] - 1.0) < 1e-4


def test_self_attention_starts_as_identity():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 16))
    layer = SelfAttention()
    variables = layer.init(jax.random.key(1), x, update_stats=False)
    np.testing.assert_array_equal(layer.apply(variables, x, update_stats=False), x)
    params = dict(variables["params"], gamma=jnp.ones(()))
    out = layer.apply({**variables, "params": params}, x, update_stats=False)
    assert float(jnp.max(jnp.abs(out - x))) > 1e-3


def test_orthogonal_regularization_values_and_gradient():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    orthogonal = {"a": {"kernel": jnp.asarray(q[:, :4], jnp.float32)}}  # W = q[:, :4].T: rows orthonormal
    assert float(losses.orthogonal_regularization(orthogonal)) < 1e-10
    w = jnp.array([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])  # kernel (in=3, out=2): W = w.T
    params = {"dense": {"kernel": w, "bias": jnp.ones(2)}, "embed": {"embedding": w}}
    # W W^T = [[10, 14], [14, 21]]: off-diagonal 14, twice; 0.5 * (14^2 + 14^2) = 196
    assert float(losses.orthogonal_regularization(params)) == 196.0
    grad = jax.grad(losses.orthogonal_regularization)(params)
    wm = w.T
    want = 2 * ((wm @ wm.T) * (1 - jnp.eye(2))) @ wm  # BigGAN-PyTorch's ortho() gradient
    np.testing.assert_allclose(grad["dense"]["kernel"], want.T, rtol=1e-6)
    assert not np.any(grad["dense"]["bias"]) and not np.any(grad["embed"]["embedding"])


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.model, "latent_dim", 13), r"config\.model\.latent_dim: .*3 equal chunks"),
    (lambda c: setattr(c.model, "shared_dim", 0), r"config\.model\.hierarchical: .*shared_dim"),
    (lambda c: setattr(c.model, "d_down", (True,)), r"config\.model\.d_down: needs one entry"),
    (lambda c: setattr(c.data, "resolution", 10), r"config\.data\.resolution: .*multiple of 4"),
    (lambda c: setattr(c.model, "num_classes", -1), r"config\.model\.num_classes: must be >= 0"),
    (lambda c: setattr(c.model, "name", "dcgan"), r"config\.model\.num_classes: model 'dcgan' is "
                                                   r"unconditional"),
])
def test_bad_model_configs_name_the_key(change, message):
    config = _tiny_conditional()
    change(config)
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate(config)


def test_conditional_model_needs_labelled_data(tmp_path):
    from PIL import Image

    from gan_jax.data.sources import DataError

    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    config = _tiny_conditional()
    config.data.name = f"folder:{tmp_path}"
    with pytest.raises(DataError, match=r"num_classes=10 needs labelled data, but folder:.* has no "
                                        r"labels"):
        train_and_evaluate(config, tmp_path / "run", devices=jax.devices()[:1], progress=False)


@pytest.mark.slow  # a short training run
def test_d_loss_decreases_on_digits(one_device):
    """With G nearly frozen, a few D steps separate real digits from fakes: the hinge loss drops."""
    config = _tiny_unconditional()
    config.train.batch_size, config.train.n_critic = 32, 1
    config.optim.g.learning_rate, config.optim.d.learning_rate = 1e-9, 2e-3
    run = build_run(config, one_device)
    state, step = run.init_state(), run.train_step()
    from gan_jax import parallel
    from gan_jax.data.pipeline import BatchIterator
    from gan_jax.data.sources import make_source

    source = make_source("digits", 8, 1)
    d_losses = []
    with BatchIterator(source, 0, 0, 32, 1) as batches:
        for _ in range(30):
            _, batch = next(batches)
            state, metrics = step(state, parallel.put_batch(batch, run.mesh))
            d_losses.append(float(metrics["d_loss"]))
    assert np.mean(d_losses[:3]) > 1.5  # hinge loss near 2 for an untrained D
    assert np.mean(d_losses[-3:]) < 0.5 * np.mean(d_losses[:3])


@pytest.mark.slow  # 2 min at load 5; test_train.py covers resume
def test_conditional_resume_is_bitwise(one_device, tmp_path):
    """The spectral-norm vectors, cBN statistics, attention and the EMA resume exactly."""
    config = _tiny_conditional()
    unbroken = train_and_evaluate(config, tmp_path / "unbroken", devices=one_device, progress=False)
    config.train.num_steps = 2
    train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    config.train.num_steps = 4
    resumed = train_and_evaluate(config, tmp_path / "resumed", devices=one_device, progress=False)
    assert_bitwise_equal(unbroken, resumed)
    u = [x for x in jax.tree.leaves(resumed.d_state["spectral"])]
    assert u and all(np.all(np.isfinite(np.asarray(x))) for x in u)


@pytest.mark.slow
def test_conditional_eight_devices_match_one_device(tmp_path):
    """SGD, not Adam: the conv biases in front of BatchNorm have a true gradient of 0, and Adam
    scales their rounding noise (which differs with the device count) up to +-lr."""
    config = _tiny_conditional()
    config.model.cross_replica_bn = True
    config.optim.g.name = config.optim.d.name = "sgd"
    config.optim.g.learning_rate = config.optim.d.learning_rate = 0.05
    config.train.num_steps = 2
    one = train_and_evaluate(config, tmp_path / "one", devices=jax.devices()[:1], progress=False)
    eight = train_and_evaluate(config, tmp_path / "eight", devices=jax.devices()[:8],
                               progress=False)
    for x, y in zip(leaves(one), leaves(eight)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    config = _tiny_conditional()
    config.train.num_steps = 2
    config.train.sample_every_steps, config.sample.num = 2, 20
    workdir = tmp_path_factory.mktemp("conditional")
    state = train_and_evaluate(config, workdir, devices=jax.devices()[:1], progress=False)
    return build_run(config, jax.devices()[:1]), state, workdir


def test_training_writes_one_row_per_class(conditional_run):
    from PIL import Image

    _, _, workdir = conditional_run
    grid = np.asarray(Image.open(workdir / "samples" / "step_0000002.png"))
    assert grid.shape == (10 * 9 + 1, 2 * 9 + 1)  # sample.num 20: 10 classes x 2, 8 px + 1 pad


def test_class_grid_rows_are_classes_and_columns_latents(conditional_run):
    run, state, _ = conditional_run
    grid = sample.class_grid(run.task, state, per_class=3, seed=5)
    assert grid.shape == (30, 8, 8, 1)
    for label in (0, 4, 9):
        np.testing.assert_array_equal(
            grid[3 * label:3 * label + 3],
            sample.generate_images(run.task, state, 3, seed=5, labels=label))
    assert not np.array_equal(grid[:3], grid[3:6])


def test_label_errors(conditional_run):
    run, state, _ = conditional_run
    with pytest.raises(ValueError, match=r"label 10 is outside \[0, 10\)"):
        sample.generate_images(run.task, state, 2, seed=0, labels=10)


def _weights(variables):
    """{path: array} of every conv/dense kernel and embedding table in `variables['params']`."""
    flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
    return {jax.tree_util.keystr(path): np.asarray(x) for path, x in flat
            if path[-1].key in ("kernel", "embedding")}


def test_n02_init_draws_every_weight_from_normal_0_02():
    """model.weight_init='N02' (BigGAN-PyTorch --G_init/--D_init N02): every conv, dense and
    embedding weight of G and D (shared embedding, cBN linears, attention, projection) is
    N(0, 0.02); 'xavier' (the default) is not."""
    config = _tiny_conditional()
    config.model.weight_init = "N02"
    _, _, g_vars, d_vars, _, _ = _init(config)
    weights = {**_weights(g_vars), **{"D" + k: v for k, v in _weights(d_vars).items()}}
    assert any("shared" in k for k in weights) and any("projection" in k for k in weights)
    everything = np.concatenate([w.ravel() for w in weights.values()])
    assert abs(np.std(everything) - 0.02) < 0.0005 and abs(np.mean(everything)) < 0.0005
    for name, w in weights.items():
        assert np.max(np.abs(w)) < 0.02 * 6, name
    config.model.weight_init = "xavier"
    _, _, g_vars, _, _, _ = _init(config)
    assert abs(np.std(np.concatenate([w.ravel() for w in _weights(g_vars).values()])) - 0.02) > 0.05


def test_unknown_weight_init_is_refused_naming_the_key():
    config = _tiny_conditional()
    config.model.weight_init = "ortho"
    with pytest.raises(config_lib.ConfigError, match=r"^config\.model\.weight_init: 'ortho' is not"):
        config_lib.validate(config)
