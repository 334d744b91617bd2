"""gan_jax.models.layers: the transposed conv equals lax.conv_transpose / the adjoint of a strided
conv / torch's conv_transpose2d, and the strided conv equals lax.conv_general_dilated, in value, in
both gradients and in second-order (gradient-penalty) gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from gan_jax.models import layers
from gan_jax.models.layers import Conv, ConvTranspose, conv, conv_transpose

DN = ("NHWC", "HWIO", "NHWC")
TOL = dict(atol=1e-5, rtol=1e-5)

# (kernel size, strides, padding, input size (H, W))
CASES = [
    ((4, 4), (2, 2), ((1, 1), (1, 1)), (5, 4)),  # DCGAN upsampling: H -> 2H
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (6, 5)),  # same size
    ((4, 4), (1, 1), ((0, 0), (0, 0)), (4, 3)),  # 'full' conv, H -> H + 3
    ((4, 4), (2, 2), ((0, 0), (0, 0)), (3, 4)),
    ((5, 3), (3, 2), ((2, 0), (1, 2)), (4, 3)),  # anisotropic and asymmetric
    ((2, 2), (3, 3), ((0, 1), (1, 0)), (3, 4)),  # stride > kernel: holes in the output
    ((1, 1), (2, 2), ((0, 0), (0, 0)), (3, 2)),
    ((4, 4), (2, 2), ((3, 2), (0, 3)), (5, 6)),
]
IDS = [f"k{k[0]}x{k[1]}-s{s[0]}x{s[1]}-p{p}" for k, s, p, _ in CASES]


def lax_reference(x, kernel, strides, padding):
    """lax.conv_transpose with the kernel of the forward conv (transpose_kernel=True)."""
    k = kernel.shape[:2]
    pad = [(k[d] - 1 - padding[d][0], k[d] - 1 - padding[d][1]) for d in range(2)]
    return lax.conv_transpose(x, kernel, strides, pad, dimension_numbers=DN, transpose_kernel=True)


def strided_conv(y, kernel, strides, padding):
    return lax.conv_general_dilated(y, kernel, strides, padding, dimension_numbers=DN)


def adjoint_reference(x, kernel, strides, padding):
    """The definition: the input gradient (adjoint) of the strided conv big -> small."""
    out_hw = layers.output_shape(x.shape[1:3], kernel.shape[:2], strides, padding)
    big = jnp.zeros((x.shape[0], *out_hw, kernel.shape[2]), x.dtype)
    small, vjp = jax.vjp(lambda y: strided_conv(y, kernel, strides, padding), big)
    assert small.shape == x.shape
    return vjp(x)[0]


def make_inputs(kernel_size, in_hw, batch=2, cin=3, cout=4, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch, *in_hw, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(*kernel_size, cout, cin)) * 0.5, jnp.float32)
    return x, kernel


def close(a, b, **tol):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **(tol or TOL))


@functools.lru_cache(maxsize=None)
def case_results(ksize, strides, padding, in_hw):
    """Everything the two tests below compare for one case, computed in one compiled program."""
    x, kernel = make_inputs(ksize, in_hw, seed=1)
    out_hw = layers.output_shape(in_hw, ksize, strides, padding)
    g = jnp.asarray(np.random.default_rng(2).normal(size=(2, *out_hw, 4)), jnp.float32)

    def grads(fn, x, kernel):
        return jax.grad(lambda x, k: jnp.vdot(fn(x, k, strides, padding), g), (0, 1))(x, kernel)

    @jax.jit
    def compute(x, kernel):
        return dict(
            y=conv_transpose(x, kernel, strides, padding),
            y_lax=lax_reference(x, kernel, strides, padding),
            y_adjoint=adjoint_reference(x, kernel, strides, padding),
            grads=grads(conv_transpose, x, kernel),
            grads_lax=grads(lax_reference, x, kernel),
            # the convolution-based gradients used on GPU/TPU (only im2col ones run on CPU)
            grads_conv=layers._grads_conv(x, kernel, g, ksize, strides, padding))

    return compute(x, kernel)


@pytest.mark.parametrize("ksize,strides,padding,in_hw", CASES, ids=IDS)
def test_forward_matches_lax_and_adjoint_definition(ksize, strides, padding, in_hw):
    r = case_results(ksize, strides, padding, in_hw)
    expected_hw = tuple((n - 1) * s + k - lo - hi
                        for n, k, s, (lo, hi) in zip(in_hw, ksize, strides, padding))
    assert r["y"].shape == (2, *expected_hw, 4)
    close(r["y"], r["y_lax"])
    close(r["y"], r["y_adjoint"])


@pytest.mark.parametrize("ksize,strides,padding,in_hw", CASES, ids=IDS)
def test_gradients_match_autodiff_of_lax(ksize, strides, padding, in_hw):
    r = case_results(ksize, strides, padding, in_hw)
    for ours in (r["grads"], r["grads_conv"]):
        close(ours[0], r["grads_lax"][0])  # d/dx
        close(ours[1], r["grads_lax"][1])  # d/dkernel


def test_check_grads_reverse_mode_second_order():
    x, kernel = make_inputs((4, 4), (3, 2), batch=1, cin=2, cout=2)
    check_grads(jax.jit(conv_transpose), (x, kernel), order=2, modes=["rev"],
                atol=2e-2, rtol=2e-2, eps=1e-2)


def test_dcgan_sized_layer_matches_lax():
    """A (scaled-down) DCGAN generator layer: 8 -> 16 px, 32 -> 16 channels, batch 4."""
    x, kernel = make_inputs((4, 4), (8, 8), batch=4, cin=32, cout=16, seed=3)
    kernel = kernel * 0.1
    g = jnp.asarray(np.random.default_rng(4).normal(size=(4, 16, 16, 16)), jnp.float32)
    pad = ((1, 1), (1, 1))
    ours = jax.jit(jax.value_and_grad(lambda x, k: jnp.vdot(conv_transpose(x, k), g), (0, 1)))
    ref = jax.jit(jax.value_and_grad(
        lambda x, k: jnp.vdot(lax_reference(x, k, (2, 2), pad), g), (0, 1)))
    (v, (dx, dk)), (v_ref, (dx_ref, dk_ref)) = ours(x, kernel), ref(x, kernel)
    close(v, v_ref, rtol=1e-5, atol=1e-3)
    close(dx, dx_ref, rtol=1e-5, atol=1e-4)
    close(dk, dk_ref, rtol=1e-5, atol=1e-4)


def test_vmap_and_jit():
    x, kernel = make_inputs((4, 4), (3, 3), batch=2)
    ys = jax.jit(jax.vmap(lambda x: conv_transpose(x, kernel)))(x[:, None])
    close(ys[:, 0], lax_reference(x, kernel, (2, 2), ((1, 1), (1, 1))))


def test_shard_map_data_parallel_gradients():
    """Replicated kernel, batch sharded over devices: gradients equal those of lax.conv_transpose
    (the kernel gradient is summed over the data axis by autodiff, as for any replicated param)."""
    if jax.device_count() < 2:
        pytest.skip("needs 2 devices")
    from jax.sharding import NamedSharding, PartitionSpec as P

    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])
    x, kernel = make_inputs((4, 4), (3, 3), batch=4, seed=8)
    x = jax.device_put(x, NamedSharding(mesh, P("data")))
    kernel = jax.device_put(kernel, NamedSharding(mesh, P()))

    def grads(fn):
        def step(kernel, x):
            return jax.grad(lambda k, x: jnp.sum(fn(x, k) ** 2), (0, 1))(kernel, x)

        return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data")),
                                     out_specs=(P(), P("data"))))(kernel, x)

    pad = ((1, 1), (1, 1))
    ours = grads(lambda x, k: conv_transpose(x, k, (2, 2), pad))
    ref = grads(lambda x, k: lax_reference(x, k, (2, 2), pad))
    close(ours[0], ref[0], rtol=1e-5, atol=1e-4)
    close(ours[1], ref[1], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(padding=((4, 4), (1, 1))), "padding"),
    (dict(padding=((-1, 0), (1, 1))), "padding"),
    (dict(padding="SAME"), "padding"),
    (dict(strides=(0, 2)), "stride"),
])
def test_rejects_unsupported_settings(kwargs, message):
    x, kernel = make_inputs((4, 4), (3, 3))
    with pytest.raises(ValueError, match=message):
        conv_transpose(x, kernel, **kwargs)


def test_rejects_bad_shapes():
    x, kernel = make_inputs((4, 4), (3, 3))
    with pytest.raises(ValueError, match="features"):
        conv_transpose(x[..., :2], kernel)
    with pytest.raises(ValueError, match="NHWC"):
        conv_transpose(x[0], kernel)
    with pytest.raises(ValueError, match="empty"):
        conv_transpose(x[:, :1, :1], jnp.zeros((3, 3, 4, 3)), 1, 2)


def test_module_params_shapes_and_bias():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, 4, 4, 6)), jnp.float32)
    layer = ConvTranspose(5)
    shapes = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)["params"]
    assert shapes["kernel"].shape == (4, 4, 5, 6)  # (kh, kw, out_features, in_features)
    assert shapes["bias"].shape == (5,)
    no_bias = jax.eval_shape(ConvTranspose(5, use_bias=False).init, jax.random.PRNGKey(0), x)
    assert set(no_bias["params"]) == {"kernel"}

    params = {"kernel": jnp.asarray(rng.normal(size=(4, 4, 5, 6)), jnp.float32),
              "bias": jnp.asarray(rng.normal(size=(5,)), jnp.float32)}
    apply = jax.jit(layer.apply)
    y = apply({"params": params}, x)
    assert y.shape == (2, 8, 8, 5)
    close(y, lax_reference(x, params["kernel"], (2, 2), ((1, 1), (1, 1))) + params["bias"])
    shifted = {"params": {**params, "bias": params["bias"] + 1.0}}
    close(apply(shifted, x) - y, jnp.ones_like(y))
    # extra leading axes are batch axes
    close(apply({"params": params}, x.reshape(1, 2, 4, 4, 6))[0], y)
    # other geometries and dtypes
    same = ConvTranspose(5, kernel_size=(3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    assert jax.eval_shape(same.init, jax.random.PRNGKey(0), x)["params"]["kernel"].shape == (
        3, 3, 5, 6)
    y16 = jax.eval_shape(ConvTranspose(5, dtype=jnp.bfloat16).apply, {"params": params}, x)
    assert y16.dtype == jnp.bfloat16 and y16.shape == (2, 8, 8, 5)


def test_module_init():
    x = jnp.ones((1, 3, 3, 128), jnp.float32)

    @jax.jit
    def init(key):
        k1, k2 = jax.random.split(key)
        default = ConvTranspose(64, kernel_size=(3, 3), strides=(1, 1),
                                padding=((1, 1), (1, 1))).init(k1, x)["params"]
        dcgan = ConvTranspose(32, kernel_init=jax.nn.initializers.normal(0.02)).init(k2, x)
        return default, dcgan["params"]

    default, dcgan = init(jax.random.PRNGKey(1))
    # lecun_normal sees fan_in = kh * kw * in_features, as for flax.linen.ConvTranspose
    target = (9 * 128) ** -0.5
    assert abs(float(jnp.std(default["kernel"])) - target) < 0.05 * target
    np.testing.assert_array_equal(default["bias"], 0.0)
    assert abs(float(jnp.std(dcgan["kernel"])) - 0.02) < 0.001


TORCH_CASES = [((4, 4), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1)), ((4, 4), (1, 1), (0, 0)),
               ((5, 3), (3, 2), (2, 1))]


@pytest.mark.parametrize("ksize,strides,pad", TORCH_CASES,
                         ids=[f"k{k[0]}x{k[1]}-s{s[0]}x{s[1]}-p{p[0]}x{p[1]}"
                              for k, s, p in TORCH_CASES])
def test_matches_torch_conv_transpose2d(ksize, strides, pad):
    torch = pytest.importorskip("torch")
    x, kernel = make_inputs(ksize, (5, 4), seed=6)
    padding = ((pad[0], pad[0]), (pad[1], pad[1]))
    out_hw = layers.output_shape((5, 4), ksize, strides, padding)
    g = np.random.default_rng(7).normal(size=(2, *out_hw, 4)).astype(np.float32)

    # layout mapping: ours (kh, kw, out, in) <-> torch ConvTranspose2d weight (in, out, kh, kw)
    weight = torch.tensor(np.asarray(kernel).transpose(3, 2, 0, 1), requires_grad=True)
    np.testing.assert_array_equal(weight.detach().permute(2, 3, 1, 0).numpy(), kernel)
    xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2), requires_grad=True)  # NCHW
    yt = torch.nn.functional.conv_transpose2d(xt, weight, stride=strides, padding=pad)
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2)))

    @jax.jit
    def value_and_vjp(x, kernel, g):
        y, vjp = jax.vjp(lambda x, k: conv_transpose(x, k, strides, padding), x, kernel)
        return y, vjp(g)

    y, (dx, dk) = value_and_vjp(x, kernel, jnp.asarray(g))
    close(y, yt.detach().numpy().transpose(0, 2, 3, 1))
    close(dx, xt.grad.numpy().transpose(0, 2, 3, 1))
    close(dk, weight.grad.numpy().transpose(2, 3, 1, 0))


# ------------------------------------------------------------------------------------------------
# conv / Conv: the regular strided convolution with custom gradients

# (kernel size, strides, padding, input size (H, W))
CONV_CASES = [
    ((4, 4), (2, 2), ((1, 1), (1, 1)), (6, 8)),  # DCGAN discriminator: H -> H/2
    ((4, 4), (2, 2), ((1, 1), (1, 1)), (7, 5)),  # odd sizes: the conv drops trailing rows
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (5, 4)),
    ((1, 1), (1, 1), ((0, 0), (0, 0)), (3, 4)),
    ((5, 3), (3, 2), ((2, 0), (1, 2)), (8, 7)),  # anisotropic and asymmetric
    # kernel not a multiple of the stride; trailing input rows that no window touches
    ((3, 3), (2, 2), ((0, 0), (0, 0)), (8, 7)),
]
CONV_IDS = [f"k{k[0]}x{k[1]}-s{s[0]}x{s[1]}-p{p}-in{hw[0]}x{hw[1]}" for k, s, p, hw in CONV_CASES]


def gp_loss(fn, x, kernel):
    """A value plus a gradient penalty on the input gradient, as in WGAN-GP / R1."""
    dx = jax.grad(lambda x: jnp.sum(jnp.tanh(fn(x, kernel))))(x)
    return jnp.sum(fn(x, kernel) ** 2) + jnp.sum(dx ** 2)


def gp_loss_kx(fn, kernel, x):
    return gp_loss(fn, x, kernel)


def conv_results(ksize, strides, padding, in_hw):
    """Everything the conv tests compare for one case, computed in one compiled program (the
    gradient penalty, slow to compile, only for strided cases)."""
    with_gp = strides != (1, 1)
    x, kernel = make_inputs(ksize, in_hw, seed=11)
    kernel = jnp.swapaxes(kernel, 2, 3)  # (kh, kw, in, out)
    out_hw = layers.conv_output_shape(in_hw, ksize, strides, padding)
    g = jnp.asarray(np.random.default_rng(12).normal(size=(2, *out_hw, 4)), jnp.float32)
    ours = lambda x, k: conv(x, k, strides, padding)
    ref = lambda x, k: strided_conv(x, k, strides, padding)

    def grads(fn):
        return jax.grad(lambda x, k: jnp.vdot(fn(x, k), g), (0, 1))(x, kernel)

    @jax.jit
    def compute(x, kernel):
        return dict(
            y=ours(x, kernel), y_ref=ref(x, kernel), grads=grads(ours), grads_ref=grads(ref),
            # the native kernel gradient used on GPU/TPU (only the im2col one runs on CPU)
            dk_native=layers._conv_kernel_grad_native(x, kernel, g, strides, padding),
            **(dict(gp=jax.grad(functools.partial(gp_loss, ours), (0, 1))(x, kernel),
                    gp_ref=jax.grad(functools.partial(gp_loss, ref), (0, 1))(x, kernel))
               if with_gp else {}))

    return compute(x, kernel)


@pytest.mark.parametrize("ksize,strides,padding,in_hw", CONV_CASES, ids=CONV_IDS)
def test_conv_value_gradients_and_gradient_penalty_match_lax(ksize, strides, padding, in_hw):
    r = conv_results(ksize, strides, padding, in_hw)
    out_hw = tuple((n + lo + hi - k) // s + 1
                   for n, k, s, (lo, hi) in zip(in_hw, ksize, strides, padding))
    assert r["y"].shape == (2, *out_hw, 4)
    close(r["y"], r["y_ref"])
    close(r["grads"][0], r["grads_ref"][0])  # d/dx
    close(r["grads"][1], r["grads_ref"][1])  # d/dkernel
    close(r["dk_native"], r["grads_ref"][1])
    if "gp" in r:
        close(r["gp"][0], r["gp_ref"][0], rtol=1e-4, atol=1e-4)  # second order, d/dx
        close(r["gp"][1], r["gp_ref"][1], rtol=1e-4, atol=1e-4)  # second order, d/dkernel


def test_batch_chunked_im2col_gradients(monkeypatch):
    """Tiny `_CHUNK_BYTES`: the CPU gradients of both layers run as a scan over batch chunks."""
    monkeypatch.setattr(layers, "_CHUNK_BYTES", 1)
    x, kernel = make_inputs((4, 4), (6, 6), batch=6, seed=13)
    kt = jnp.swapaxes(kernel, 2, 3)  # (kh, kw, in, out) for the strided conv
    pad = ((1, 1), (1, 1))
    cases = [(lambda x, k: conv(x, k), lambda x, k: strided_conv(x, k, (2, 2), pad), kt),
             (lambda x, k: conv_transpose(x, k), lambda x, k: lax_reference(x, k, (2, 2), pad),
              kernel)]

    @jax.jit
    def compute(x):
        return [(jax.grad(functools.partial(gp_loss, ours), (0, 1))(x, k),
                 jax.grad(functools.partial(gp_loss, ref), (0, 1))(x, k))
                for ours, ref, k in cases]

    assert "while" in jax.jit(compute).lower(x).as_text()  # really chunked
    for ours, ref in compute(x):
        close(ours[0], ref[0], rtol=1e-4, atol=1e-4)
        close(ours[1], ref[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("params", ["replicated", "per_device"])
def test_conv_shard_map_gradients(params, monkeypatch):
    """Batch sharded over 2 devices, kernel replicated (its gradient summed over devices by
    autodiff) or made per-device with pcast as the train step does (summed explicitly): gradients,
    also of a gradient penalty and with batch-chunked im2col, equal lax's."""
    if jax.device_count() < 2:
        pytest.skip("needs 2 devices")
    from jax.sharding import NamedSharding, PartitionSpec as P

    monkeypatch.setattr(layers, "_CHUNK_BYTES", 1)  # 2 chunks of 1 example per device
    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])
    x, kernel = make_inputs((4, 4), (4, 6), batch=4, seed=14)
    x = jax.device_put(x, NamedSharding(mesh, P("data")))
    kernel = jax.device_put(jnp.swapaxes(kernel, 2, 3), NamedSharding(mesh, P()))

    def grads(fn):
        def step(kernel, x):
            if params == "per_device":
                dk, dx = jax.grad(functools.partial(gp_loss_kx, fn), (0, 1))(
                    lax.pcast(kernel, "data", to="varying"), x)
                return lax.psum(dk, "data"), dx
            return jax.grad(functools.partial(gp_loss_kx, fn), (0, 1))(kernel, x)

        return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P("data")),
                                     out_specs=(P(), P("data"))))(kernel, x)

    ours = grads(lambda x, k: conv(x, k))
    ref = grads(lambda x, k: strided_conv(x, k, (2, 2), ((1, 1), (1, 1))))
    close(ours[0], ref[0], rtol=1e-4, atol=1e-4)
    close(ours[1], ref[1], rtol=1e-4, atol=1e-4)


def test_conv_rejects_unsupported_settings():
    x, kernel = make_inputs((4, 4), (3, 3))
    kernel = jnp.swapaxes(kernel, 2, 3)
    for kwargs, message in [(dict(padding=((4, 4), (1, 1))), "padding"),
                            (dict(padding="SAME"), "padding"), (dict(strides=(0, 2)), "stride")]:
        with pytest.raises(ValueError, match=message):
            conv(x, kernel, **kwargs)
    with pytest.raises(ValueError, match="features"):
        conv(x[..., :2], kernel)
    with pytest.raises(ValueError, match="NHWC"):
        conv(x[0], kernel)
    with pytest.raises(ValueError, match="empty"):
        conv(x[:, :1, :1], kernel)


def test_conv_module_matches_flax_conv():
    import flax.linen as nn

    rng = np.random.default_rng(15)
    x = jnp.asarray(rng.normal(size=(2, 8, 6, 3)), jnp.float32)
    pad = ((1, 1), (1, 1))
    ours, flax_conv = Conv(5), nn.Conv(5, (4, 4), (2, 2), pad)

    @jax.jit
    def compute(key, x):
        v_ours, v_flax = ours.init(key, x), flax_conv.init(key, x)
        v_no_bias = Conv(5, use_bias=False).init(key, x)
        return (v_ours, v_flax, ours.apply(v_flax, x), flax_conv.apply(v_flax, x),
                ours.apply(v_ours, x[None])[0], v_no_bias)

    v_ours, v_flax, y, y_flax, y_batched, v_no_bias = compute(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_flax)
    assert v_ours["params"]["kernel"].shape == (4, 4, 3, 5)  # (kh, kw, in_features, features)
    # same initializers, so the same parameters from the same key
    close(v_ours["params"]["kernel"], v_flax["params"]["kernel"])
    np.testing.assert_array_equal(v_ours["params"]["bias"], 0.0)
    assert set(v_no_bias["params"]) == {"kernel"}
    assert y.shape == (2, 4, 3, 5)
    close(y, y_flax)
    close(y_batched, y_flax)  # extra leading axes are batch axes
    y16 = jax.eval_shape(Conv(5, dtype=jnp.bfloat16).apply, v_flax, x)
    assert y16.dtype == jnp.bfloat16 and y16.shape == (2, 4, 3, 5)
