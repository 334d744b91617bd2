"""Mixed precision: train.compute_dtype and float16 loss scaling (gan_jax/precision.py)."""

import functools
import hashlib
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import config as config_lib
from gan_jax import parallel, precision, run as run_lib, sample
from gan_jax.configs import digits_dcgan, digits_progressive, digits_stylegan2
from gan_jax.models import build_models
from conftest import recorded_for_this_host
from gan_jax.train import train_and_evaluate

STEPS = 10
# sha256 (first 16 hex digits) of the float leaves of the state after 3 steps of `_config()`
# computed by the code before train.compute_dtype existed (main at b2df003), per host vector ISA
# (gan_jax.train.host_isa: XLA:CPU's kernels, so the bits, depend on it; README,
# "Reproducibility"): on the AVX2 machine of then, and at b2df003 on an AVX-512 Xeon.
FLOAT32_DIGESTS_BEFORE = {"avx2": "fd24449d1c6e2a80", "avx512": "d792b7c575dc48e7"}


def _config(compute_dtype="float32", r1_weight=1.0):
    """A DCGAN on 8x8 images, by default with R1 (a second-order gradient through the compute
    dtype)."""
    config = digits_dcgan.get_config()
    config.loss.r1_weight = r1_weight
    config.data.resolution = 8
    config.model.width = 8
    config.model.latent_dim = 8
    config.train.batch_size = 8
    config.ema.decay, config.ema.start_step = 0.9, 0
    config.train.compute_dtype = compute_dtype
    return config


def _batches(n: int):
    """n fixed batches of uint8 images (n_critic 1, 8 images), independent of any data pipeline."""
    rng = np.random.default_rng(0)
    return [{"image": rng.integers(0, 256, (1, 8, 8, 8, 1), dtype=np.uint8)} for _ in range(n)]


@functools.cache
def _train(compute_dtype: str, steps: int = STEPS, r1_weight: float = 1.0):
    """(states after each step, (d_loss, g_loss) per step, the run, its step) on one device."""
    run = run_lib.build_run(_config(compute_dtype, r1_weight), jax.devices()[:1])
    step = run.train_step(donate=False)
    state, states, losses = run.init_state(), [], []
    for batch in _batches(steps):
        state, metrics = step(state, parallel.put_batch(batch, run.mesh))
        states.append(state)
        losses.append((float(metrics["d_loss"]), float(metrics["g_loss"])))
    return states, np.array(losses), run, step


def _float_leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
        (state.g_params, state.d_params, state.g_state, state.d_state, state.g_opt_state,
         state.d_opt_state, state.ema_params, state.ema_state)))
            if np.issubdtype(np.asarray(x).dtype, np.floating)]


def _digest(state) -> str:
    h = hashlib.sha256()
    for x in _float_leaves(state):
        h.update(x.tobytes())
    return h.hexdigest()[:16]


def test_float32_is_bitwise_the_code_before_compute_dtype():
    recorded = recorded_for_this_host(FLOAT32_DIGESTS_BEFORE)
    states, _, _, _ = _train("float32")
    assert _digest(states[2]) == recorded


def test_bfloat16_tracks_float32():
    """Same init, same batches: D's and G's losses within 1e-4 at every step (measured 1.1e-5,
    6e-6) and the EMA generator's samples within 2% of their largest value after STEPS steps
    (measured 0.45%: bfloat16's rounding, 2**-8)."""
    states32, losses32, run, _ = _train("float32")
    states16, losses16, _, _ = _train("bfloat16")
    np.testing.assert_allclose(losses16, losses32, atol=1e-4)
    keys = sample.latent_keys(0, 0, 8)
    images = [run.task.sample(s[-1].ema_params, s[-1].ema_state, keys, s[-1].step)
              for s in (states32, states16)]
    assert images[1].dtype == jnp.float32
    error = np.abs(images[1] - images[0]).max() / np.abs(images[0]).max()
    assert 0 < error < 0.02  # nonzero: bfloat16 did change the computation


def test_bfloat16_keeps_params_and_optimizer_states_float32():
    states, _, _, _ = _train("bfloat16")
    s = states[-1]
    for tree in (s.g_params, s.d_params, s.g_opt_state, s.d_opt_state, s.ema_params, s.g_state,
                 s.d_state):
        assert {x.dtype for x in jax.tree.leaves(tree)} <= {jnp.dtype(jnp.float32),
                                                            jnp.dtype(jnp.int32)}


def _op_dtypes(fn, *args) -> list[tuple[str, str]]:
    """(op, input element type) of every convolution and dot in `fn`'s StableHLO."""
    text = jax.jit(fn).lower(*args).as_text()  # lowered only: nothing compiles
    return re.findall(r"stablehlo\.(convolution|dot_general).*?: \(tensor<[0-9x]*x(\w+)>", text)


def test_layers_run_in_the_compute_dtype():
    """bfloat16 DCGAN: every conv and matmul of G is bf16, D's too except its logits layer, and
    G's images and D's logits are float32."""
    generator, discriminator = build_models(_config("bfloat16"))
    z, x = jnp.zeros((2, 8)), jnp.zeros((2, 8, 8, 1))
    g_vars = jax.eval_shape(generator.init, jax.random.key(0), z)
    d_vars = jax.eval_shape(discriminator.init, jax.random.key(0), x)
    g = lambda v, z: generator.apply(v, z, mutable=["batch_stats"])[0]
    d = lambda v, x: discriminator.apply(v, x, mutable=["batch_stats"])[0]
    g_ops, d_ops = _op_dtypes(g, g_vars, z), _op_dtypes(d, d_vars, x)
    assert g_ops == [("dot_general", "bf16"), ("convolution", "bf16")]
    assert d_ops == [("convolution", "bf16"), ("dot_general", "f32")]
    assert jax.eval_shape(g, g_vars, z).dtype == jax.eval_shape(d, d_vars, x).dtype == jnp.float32


def test_stylegan2_synthesis_and_d_blocks_run_in_bfloat16():
    """As NVlabs' fp16 blocks: synthesis convs and D's blocks in bf16; the mapping, the styles
    (affine layers), the demodulation and D's 4x4 epilogue in f32; images and logits f32."""
    config = digits_stylegan2.get_config()
    config.data.resolution, config.model.latent_dim = 8, 16
    s = config.stylegan2
    s.w_dim, s.mapping_layers, s.channel_base, s.channel_max = 16, 2, 64, 16
    config.train.compute_dtype = "bfloat16"
    generator, discriminator = build_models(config)
    z, x = jnp.zeros((4, 16)), jnp.zeros((4, 8, 8, 1))
    g_vars = jax.eval_shape(generator.init, jax.random.key(0), z)
    d_vars = jax.eval_shape(discriminator.init, jax.random.key(0), x)
    g = lambda v, z: generator.apply(v, z, train=False)
    d = lambda v, x: discriminator.apply(v, x)
    g_ops, d_ops = _op_dtypes(g, g_vars, z), _op_dtypes(d, d_vars, x)
    assert {t for op, t in g_ops if op == "convolution"} == {"bf16"}
    assert {t for op, t in g_ops if op == "dot_general"} == {"bf16", "f32"}  # toRGB; the rest
    d_types = [t for _, t in d_ops]
    assert d_types[0] == "bf16" and d_types[-3:] == ["f32"] * 3  # fromrgb; b4 conv, fc, out
    assert jax.eval_shape(g, g_vars, z).dtype == jax.eval_shape(d, d_vars, x).dtype == jnp.float32


def test_loss_scale_skips_non_finite_updates_halves_and_grows():
    tx = precision.dynamic_loss_scale(optax.adam(0.1), init_scale=8.0, growth_interval=2)
    params = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(params)
    updates, skipped = tx.update({"w": jnp.array([jnp.inf, 8.0])}, state, params)
    np.testing.assert_array_equal(updates["w"], [0.0, 0.0])
    assert jax.tree.all(jax.tree.map(np.array_equal, skipped.inner, state.inner))
    assert (float(skipped.scale), int(skipped.good_steps)) == (4.0, 0)
    _, once = tx.update({"w": jnp.array([4.0, 4.0])}, skipped, params)
    _, twice = tx.update({"w": jnp.array([4.0, 4.0])}, once, params)
    assert (float(once.scale), int(once.good_steps)) == (4.0, 1)
    assert (float(twice.scale), int(twice.good_steps)) == (8.0, 0)
    # the gradients are unscaled: adam's first moment is (1 - b1) * 4 / 4
    np.testing.assert_allclose(once.inner[0].mu["w"], [0.1, 0.1], rtol=1e-6)


@pytest.mark.slow  # compiling the float16 step takes about 50 s on 2 loaded cores
def test_float16_overflow_skips_the_d_step_and_halves_its_scale():
    """A D loss scale of 2**127 overflows float16 in D's backward pass: D's params and optimizer
    state stay bitwise, its scale halves; G's update (scale 2**16) goes ahead."""
    states, _, run, step = _train("float16", 2, r1_weight=0.0)  # no R1: half the compile
    state = states[-1]
    assert float(state.d_opt_state.scale) == float(state.g_opt_state.scale) == 2.0 ** 16
    state = state.replace(d_opt_state=state.d_opt_state._replace(scale=jnp.float32(2.0 ** 127)))
    new, metrics = step(state, parallel.put_batch(_batches(3)[2], run.mesh))
    assert jax.tree.all(jax.tree.map(np.array_equal, new.d_params, state.d_params))
    assert jax.tree.all(jax.tree.map(np.array_equal, new.d_opt_state.inner,
                                     state.d_opt_state.inner))
    assert float(new.d_opt_state.scale) == 2.0 ** 126 and int(new.d_opt_state.good_steps) == 0
    assert not jax.tree.all(jax.tree.map(np.array_equal, new.g_params, state.g_params))
    assert int(new.g_opt_state.good_steps) == 3 and float(metrics["params_finite"]) == 1.0
    assert (float(metrics["d_loss_scale"]), float(metrics["g_loss_scale"])) == (2.0 ** 126,
                                                                              2.0 ** 16)


@pytest.mark.parametrize("dtype", ["bfloat16", pytest.param("float16", marks=pytest.mark.slow)])
def test_low_precision_run_is_deterministic_and_resumes_bitwise(dtype, tiny_config, one_device,
                                                                 tmp_path):
    """Also float16's loss scales, which live in the optimizer states."""
    tiny_config.train.compute_dtype = dtype
    unbroken = train_and_evaluate(tiny_config, tmp_path / "unbroken", devices=one_device,
                                  progress=False)
    tiny_config.train.num_steps = 2
    train_and_evaluate(tiny_config, tmp_path / "resumed", devices=one_device, progress=False)
    tiny_config.train.num_steps = 4
    resumed = train_and_evaluate(tiny_config, tmp_path / "resumed", devices=one_device,
                                 progress=False)
    assert int(resumed.step) == 4
    for a, b in zip(_float_leaves(unbroken), _float_leaves(resumed)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model, dtype, message", [
    ("dcgan", "float64", "config.train.compute_dtype: 'float64' is not one of bfloat16, float16, "
                         "float32"),
    ("stylegan2", "float16", "config.train.compute_dtype: model 'stylegan2' runs in float32 or "
                             "bfloat16, not float16"),
    ("progressive", "float16", "config.train.compute_dtype: model 'progressive' runs in float32 "
                               "or bfloat16, not float16")])
def test_unsupported_compute_dtype_is_refused(model, dtype, message):
    recipes = {"dcgan": digits_dcgan, "stylegan2": digits_stylegan2,
               "progressive": digits_progressive}
    config = recipes[model].get_config()
    config.train.compute_dtype = dtype
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.validate(config)
    assert str(e.value) == message


def test_workdirs_saved_before_compute_dtype_ran_in_float32():
    new = config_lib.to_plain(_config())
    old = json.loads(json.dumps(new))
    del old["train"]["compute_dtype"]
    assert config_lib.math_changes(old, new) == []
    new["train"]["compute_dtype"] = "bfloat16"
    assert config_lib.math_changes(old, new) == ["train.compute_dtype: 'float32' -> 'bfloat16'"]


def test_benchmark_refuses_an_unknown_compute_dtype(monkeypatch):
    from conftest import run_main
    from gan_jax import benchmark

    code, stderr = run_main(benchmark.main, ["benchmark", "--compute_dtype=float32,half"],
                            monkeypatch)
    assert (code, stderr) == (2, "error: --compute_dtype: 'half' is not one of float32, "
                                 "bfloat16, float16\n")


@pytest.mark.parametrize("kind, name, kwargs", [
    ("g", "unet_32", dict(norm="batch")),
    ("g", "resnet_6blocks", dict(norm="instance")),
    ("d", "n_layers", dict(norm="batch", n_layers=2)),
    ("d", "pixel", dict(norm="instance"))])
def test_image_to_image_networks_run_in_bfloat16(kind, name, kwargs):
    """pix2pix's and CycleGAN's networks in bfloat16: every conv bf16 but D's logits conv, images
    and logits float32, and the same params (float32) give outputs within 5% of the float32
    network's largest value (measured 0.4% for unet_32, 2.3% resnet_6blocks, 0.1% n_layers, 0.6%
    pixel)."""
    from gan_jax.models import pix2pix

    table = pix2pix.GENERATORS if kind == "g" else pix2pix.DISCRIMINATORS
    nets = {dtype: table[name](ngf=4, paper_test_time=False, dtype=dtype, **kwargs) if kind == "g"
            else table[name](ndf=4, dtype=dtype, **kwargs)
            for dtype in (jnp.float32, jnp.bfloat16)}
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-1, maxval=1)
    shapes = jax.eval_shape(lambda k, x: nets[jnp.float32].init(k, x, False), jax.random.key(0), x)
    # the params (float32) do not depend on the compute dtype
    assert jax.eval_shape(lambda k, x: nets[jnp.bfloat16].init(k, x, False), jax.random.key(0),
                          x) == shapes
    # N(0, 0.02) kernels and biases, unit norm scales and running variances, zero running means,
    # without compiling the init (slow on CPU)
    rng = np.random.default_rng(0)
    fill = {"scale": np.ones, "var": np.ones, "mean": np.zeros}
    variables = jax.tree_util.tree_map_with_path(
        lambda path, a: fill.get(path[-1].key, lambda shape, dtype: 0.02 * rng.standard_normal(
            shape, dtype))(a.shape, np.float32), shapes)
    run = {dtype: (lambda v, x, net=net: net.apply(v, x, False)) for dtype, net in nets.items()}
    types = [t for _, t in _op_dtypes(run[jnp.bfloat16], variables, x)]
    expected = {"g": ["bf16"] * (len(types)), "d": ["bf16"] * (len(types) - 1) + ["f32"]}[kind]
    assert len(types) >= 3 and types == expected
    out32, out16 = (jax.jit(run[dtype])(variables, x) for dtype in (jnp.float32, jnp.bfloat16))
    assert out16.dtype == jnp.float32 and out16.shape == out32.shape
    error = float(jnp.abs(out16 - out32).max() / jnp.abs(out32).max())
    assert 0 < error < 0.05, error


def test_unsupported_image_to_image_compute_dtype_is_refused():
    from gan_jax.configs import facades_pix2pix, fashion_cyclegan

    for recipe in (facades_pix2pix, fashion_cyclegan):
        config = recipe.get_config()
        config.train.compute_dtype = "bfloat16"
        config_lib.validate(config)
        config.train.compute_dtype = "float16"
        with pytest.raises(config_lib.ConfigError) as e:
            config_lib.validate(config)
        assert str(e.value) == (f"config.train.compute_dtype: model {config.model.name!r} runs in "
                                "float32 or bfloat16, not float16")


@pytest.mark.slow  # three pix2pix compilations: about 1.5 min on 2 cores
def test_bfloat16_pix2pix_is_deterministic_and_tracks_float32(tmp_path):
    """The tiny pix2pix recipe, 3 steps from the same init and batches: bfloat16 twice gives the
    same bits, and its losses stay within 2% of float32's."""
    from test_pix2pix import _pairs_folder, tiny_pix2pix

    root = _pairs_folder(tmp_path / "pairs")
    rng = np.random.default_rng(0)
    pairs = [{"a": rng.integers(0, 256, (1, 8, 32, 32, 3), dtype=np.uint8)} for _ in range(3)]
    for batch in pairs:
        batch["b"] = 255 - batch["a"]

    def losses(dtype):
        config = tiny_pix2pix(root)
        config.train.compute_dtype = dtype
        run = run_lib.build_run(config, jax.devices()[:1])
        step, state, out = run.train_step(donate=False), run.init_state(), []
        for batch in pairs:
            state, metrics = step(state, parallel.put_batch(batch, run.mesh))
            out.append([float(metrics[k]) for k in ("d_loss", "g_loss")])
        return np.array(out)

    bf16 = losses("bfloat16")
    np.testing.assert_array_equal(bf16, losses("bfloat16"))
    np.testing.assert_allclose(bf16, losses("float32"), rtol=0.02)


def test_progressive_blocks_run_in_bfloat16_and_track_float32():
    """bfloat16 PGGAN: G's dense and block convs and D's fromRGB and block convs in bf16; G's toRGB
    (1x1, a matmul) and D's 4x4 head in f32; images and logits f32; on the same params, at the top
    level mid-fade, a mean absolute difference from the float32 networks' within 3% of their mean
    absolute output (measured 0.2% for G's images, 0.02% for D's logits with N(0, 1) params; with
    the init's params at 16 px, level 2, 1.3% for G's images, whose largest difference is 5.2% of
    the largest value)."""
    from gan_jax.models.progressive import ProgressiveDiscriminator, ProgressiveGenerator

    widths = dict(start_resolution=4, fmap_base=32, fmap_max=16)
    nets = {dtype: (ProgressiveGenerator(8, 1, dtype=dtype, **widths),
                    ProgressiveDiscriminator(8, mbstd_group_size=2, dtype=dtype, **widths))
            for dtype in (jnp.float32, jnp.bfloat16)}
    z = jax.random.normal(jax.random.key(1), (4, 16))
    x = jax.random.uniform(jax.random.key(2), (4, 8, 8, 1), minval=-1, maxval=1)
    phase = dict(level=1, alpha=0.5)
    g32, d32 = nets[jnp.float32]
    rng = np.random.default_rng(0)  # N(0, 1) params without compiling the inits (slow on CPU)
    g_vars, d_vars = (jax.tree.map(lambda a: rng.standard_normal(a.shape, np.float32),
                                   jax.eval_shape(net.init, jax.random.key(0), inputs, **phase))
                      for net, inputs in ((g32, z), (d32, x)))
    g = {t: (lambda v, z, n=n: n[0].apply(v, z, **phase)) for t, n in nets.items()}
    d = {t: (lambda v, x, n=n: n[1].apply(v, x, **phase)) for t, n in nets.items()}
    g_ops, d_ops = _op_dtypes(g[jnp.bfloat16], g_vars, z), _op_dtypes(d[jnp.bfloat16], d_vars, x)
    assert {t for op, t in g_ops if op == "convolution"} == {"bf16"}
    assert {t for op, t in g_ops if op == "dot_general"} == {"bf16", "f32"}  # dense; toRGB
    # one branch per level (nn.switch): fromRGB, 2 convs per block and the old path's fromRGB
    # during the fade-in in bf16 ("b"), then the head's conv, dense and out in f32 ("h")
    d_types = "".join("h" if t == "f32" else "b" for _, t in d_ops)
    assert d_types == "b" + "hhh" + "bbbb" + "hhh"
    for fn, variables, inputs in ((g, g_vars, z), (d, d_vars, x)):
        out32, out16 = (jax.jit(fn[t])(variables, inputs) for t in (jnp.float32, jnp.bfloat16))
        assert out16.dtype == jnp.float32
        error = float(jnp.abs(out16 - out32).mean() / jnp.abs(out32).mean())
        assert 0 < error < 0.03, error


def test_inpainting_networks_run_in_bfloat16():
    """DeepFill v2 in bfloat16: every op of the two-stage G (whose coarse stage is the
    encoder-decoder G) in bf16 but contextual attention's (f32), SN-PatchGAN's convs in bf16 but
    its last (the logits); outputs f32 and within 5% of the float32 networks' largest value on the
    same params (measured: G 0.7%, D 0.4%)."""
    from gan_jax.models import inpainting

    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1), minval=-1, maxval=1)
    mask = (jax.random.uniform(jax.random.key(2), (2, 32, 32, 1)) < 0.3).astype(jnp.float32)
    nets = {t: (inpainting.GENERATORS["two_stage"](4, 1, (2,), t),
                inpainting.SNPatchDiscriminator(4, 3, t))
            for t in (jnp.float32, jnp.bfloat16)}
    rng = np.random.default_rng(0)  # params without compiling the inits (slow on CPU)
    draw = lambda a: 0.1 * rng.standard_normal(a.shape, np.float32) if a.ndim > 1 else (  # noqa
        rng.standard_normal(a.shape, np.float32) / np.sqrt(a.size))  # SN vectors, biases
    g_vars = jax.tree.map(draw, jax.eval_shape(nets[jnp.float32][0].init, jax.random.key(0), x,
                                               mask))
    d_in = jnp.concatenate([x, mask], -1)
    d_vars = jax.tree.map(draw, jax.eval_shape(
        lambda k, x: nets[jnp.float32][1].init(k, x, False), jax.random.key(0), d_in))
    g = {t: (lambda v, x, n=n: n[0].apply(v, x, mask)[-1]) for t, n in nets.items()}
    d = {t: (lambda v, x, n=n: n[1].apply(v, x, False)) for t, n in nets.items()}
    g_types = [t for _, t in _op_dtypes(g[jnp.bfloat16], g_vars, x)]
    attention = [t for _, t in _op_dtypes(
        lambda f: inpainting.contextual_attention(f, mask[:, ::4, ::4]), jnp.zeros((2, 8, 8, 16)))]
    assert set(attention) == {"f32"} and g_types.count("f32") == len(attention)
    assert g_types.count("bf16") > 20
    d_ops = _op_dtypes(d[jnp.bfloat16], d_vars, d_in)
    assert [t for op, t in d_ops if op == "convolution"] == ["bf16", "bf16", "f32"]
    assert {t for op, t in d_ops if op == "dot_general"} == {"f32"}  # the power iteration
    for fn, variables, inputs in ((g, g_vars, x), (d, d_vars, d_in)):
        out32, out16 = (jax.jit(fn[t])(variables, inputs) for t in (jnp.float32, jnp.bfloat16))
        assert out16.dtype == jnp.float32 and out16.shape == out32.shape
        error = float(jnp.abs(out16 - out32).max() / jnp.abs(out32).max())
        assert 0 < error < 0.05, error
