"""Image-to-image networks of pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017).

Layer by layer as junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` (`UnetGenerator`,
`ResnetGenerator`, `NLayerDiscriminator`, `PixelDiscriminator`, `get_norm_layer`, `init_weights`):

* U-Net G: `num_downs` 4×4 stride-2 convs down to 1×1 (`unet_256`: 8, `unet_128`: 7, 5 for 32 px)
  and 4×4 stride-2 transposed convs up, each level's input concatenated to its up path. Widths
  ngf, 2ngf, 4ngf, then 8ngf; dropout 0.5 after the up-norm of the `num_downs - 5` middle 8ngf
  levels (not the innermost one). As in the reference, the skip carries the level's input *after*
  its LeakyReLU (the reference's in-place `LeakyReLU` rewrites the tensor before `torch.cat`; see
  lanpa/tensorboardX#215, which shows the exported graph).
* ResNet G (Johnson et al.): reflect pad 3 + 7×7 conv, two 3×3 stride-2 convs, `n_blocks` residual
  blocks (reflect pad 1 + 3×3 conv, twice), two 3×3 stride-2 transposed convs with
  output_padding=1, reflect pad 3 + 7×7 conv, tanh.
* N-layer PatchGAN D: 4×4 convs with padding 1, stride 2 for the first `n_layers`, then two
  stride-1 ones; widths ndf·min(2^i, 8); LeakyReLU 0.2; no norm after the first conv; n_layers 3
  sees 70×70 patches. PixelGAN D: the same with 1×1 convs (ndf, 2ndf, 1).

Norms: `batch` (γ ~ N(1, 0.02), β = 0, eps 1e-5; convs followed by a norm have no bias) or
`instance` (PyTorch's `InstanceNorm2d` defaults: eps 1e-5, no affine params, no running stats;
convs keep their bias). Kernels ~ N(0, 0.02), biases 0. The reference's quirk that PixelGAN's
last conv has a bias only with instance norm is kept (parameter counts match).

Mixed precision: `dtype` (train.compute_dtype, float32 or bfloat16) is the dtype of the convs and
norms' outputs; params stay float32, norm statistics are reduced in float32 (Flax's
`force_float32_reductions`), G's tanh output and D's last conv (its logits) are float32.

Call convention: `generator(x, train)` maps (B, H, W, C) images in [-1, 1] to (B, H, W,
out_channels) in [-1, 1]; `discriminator(x, train)` maps images to patch logits (B, h, w).
Batch statistics are used, and running averages written to `batch_stats` (apply with
`mutable=["batch_stats"]`), whenever the generator is stochastic: `train=True`, or `train=False`
with `paper_test_time=True` (the paper's test time, the reference's `test.py` without `--eval`:
dropout stays on, drawn from the `dropout` rng, so a given key gives the same output, and BN
normalises with the test batch's statistics; the updated running averages are then discarded).
With `paper_test_time=False`, `train=False` is PyTorch's `model.eval()`: no dropout, running
averages. Discriminators use running averages whenever `train=False`. A dropout mask per example
(each drawn from that example's own key) comes from `jax.vmap` over examples and keys, which
instance norm allows (batch norm couples the batch).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import Conv, ConvTranspose

NORMS = ("batch", "instance")


def normal_init(stddev: float, mean: float = 0.0) -> nn.initializers.Initializer:
    """mean + stddev * N(0, 1): bit for bit `nn.initializers.normal(stddev)` (plus mean).

    Drawn as a flat vector and reshaped: XLA:CPU compiles the (partitionable) threefry draw of an
    N-D shape very slowly (measured 22-29 s for a (4, 4, 8, 16) kernel, 1.4 s drawn flat), and the
    values are the same.
    """

    def init(key, shape, dtype=jnp.float32):
        return mean + stddev * jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)

    return init


INIT = normal_init(0.02)


class Dropout(nn.Module):
    """`nn.Dropout(rate, deterministic)` bit for bit (same rng, same mask), the mask drawn flat
    and reshaped for fast XLA:CPU compiles (see `normal_init`).

    With `example_keys` (B,), example i's mask is drawn from fold_in(example_keys[i], stream)
    instead, so it depends on that example's key alone (not on the batch or the device count).
    """

    rate: float
    deterministic: bool
    stream: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, example_keys: jax.Array | None = None) -> jax.Array:
        if self.deterministic:
            return x
        keep = 1.0 - self.rate
        if example_keys is None:
            mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.size,)).reshape(x.shape)
        else:
            size = math.prod(x.shape[1:])
            mask = jax.vmap(lambda k: jax.random.bernoulli(
                jax.random.fold_in(k, self.stream), keep, (size,)))(example_keys).reshape(x.shape)
        return jax.lax.select(mask, x / keep, jnp.zeros_like(x))


def norm_layer(kind: str, use_running_average: bool, momentum: float,
               axis_name: str | None, dtype: Any = jnp.float32) -> Callable[[jax.Array], jax.Array]:
    """BatchNorm2d (`batch`) or InstanceNorm2d without affine params (`instance`), as PyTorch's;
    statistics reduced in float32, output in `dtype`."""
    if kind == "batch":
        return nn.BatchNorm(use_running_average=use_running_average, momentum=momentum,
                            epsilon=1e-5, scale_init=normal_init(0.02, 1.0), axis_name=axis_name,
                            dtype=dtype)
    if kind == "instance":
        return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False,
                               use_fast_variance=False, dtype=dtype)
    raise ValueError(f"unknown norm {kind!r}; use one of {', '.join(NORMS)}")


def _conv(features: int, kernel: int, stride: int, pad: int, use_bias: bool,
          dtype: Any = jnp.float32) -> Conv:
    p = ((pad, pad), (pad, pad))
    return Conv(features, (kernel, kernel), (stride, stride), p, use_bias=use_bias,
                kernel_init=INIT, dtype=dtype)


def _up(features: int, use_bias: bool, dtype: Any = jnp.float32) -> ConvTranspose:
    """ConvTranspose2d(kernel 4, stride 2, padding 1): doubles the size."""
    return ConvTranspose(features, (4, 4), (2, 2), ((1, 1), (1, 1)), use_bias=use_bias,
                         kernel_init=INIT, dtype=dtype)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """PyTorch's ReflectionPad2d(pad) on NHWC images (the edge pixel is not repeated)."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _check_side(x: jax.Array, multiple: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] % multiple or x.shape[2] % multiple:
        raise ValueError(f"{what} takes NHWC images whose sides are multiples of {multiple}, got "
                         f"shape {x.shape}")


class _Generator(nn.Module):
    """Fields shared by the two generators."""

    out_channels: int = 3
    ngf: int = 64
    norm: str = "batch"
    dropout: bool = False
    paper_test_time: bool = True
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    def _norm(self, stochastic: bool) -> Callable:
        return norm_layer(self.norm, not stochastic, self.bn_momentum, self.bn_axis_name,
                          self.dtype)

    def _stochastic(self, train: bool) -> bool:
        return train or self.paper_test_time


class UNetGenerator(_Generator):
    """pix2pix's U-Net: images (B, H, W, C) in [-1, 1], H and W multiples of 2**num_downs ->
    (B, H, W, out_channels) in [-1, 1]. `unet_256` is num_downs=8, `unet_128` num_downs=7."""

    num_downs: int = 8
    dropout: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, example_keys: jax.Array | None = None
                 ) -> jax.Array:
        """example_keys: optional (B,) keys, one per image, to draw the dropout masks from (see
        `Dropout`); without them the masks come from the `dropout` rng."""
        if self.num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (the reference's four outer levels and the "
                             f"innermost), got {self.num_downs}")
        _check_side(x, 2 ** self.num_downs, f"a U-Net with num_downs={self.num_downs}")
        stochastic = self._stochastic(train)
        use_bias = self.norm == "instance"
        widths = [self.ngf * min(2 ** i, 8) for i in range(self.num_downs)]
        skips = []  # the input of each level below the outermost, after its LeakyReLU
        h = _conv(widths[0], 4, 2, 1, use_bias, self.dtype)(x)
        for level in range(1, self.num_downs):
            h = nn.leaky_relu(h, 0.2)
            skips.append(h)
            h = _conv(widths[level], 4, 2, 1, use_bias, self.dtype)(h)
            if level < self.num_downs - 1:  # the innermost conv (1x1 output) has no norm
                h = self._norm(stochastic)(h)
        for level in reversed(range(1, self.num_downs)):
            h = self._norm(stochastic)(_up(widths[level - 1], use_bias, self.dtype)(nn.relu(h)))
            if self.dropout and 4 <= level < self.num_downs - 1:
                h = Dropout(0.5, not stochastic, stream=level)(h, example_keys)
            h = jnp.concatenate([skips[level - 1], h], axis=-1)
        return jnp.tanh(_up(self.out_channels, True, self.dtype)(nn.relu(h)).astype(jnp.float32))


class ResNetBlock(nn.Module):
    """x + [reflect pad 1, 3x3 conv, norm, ReLU, (dropout 0.5), reflect pad 1, 3x3 conv,
    norm](x); the dropout mask from `example_keys` (stream `stream`, see `Dropout`) when given."""

    norm: Callable[[], Callable]
    use_bias: bool
    dropout: bool
    deterministic: bool
    stream: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, example_keys: jax.Array | None = None) -> jax.Array:
        features = x.shape[-1]
        conv = lambda: _conv(features, 3, 1, 0, self.use_bias, self.dtype)  # noqa: E731
        h = nn.relu(self.norm()(conv()(reflect_pad(x, 1))))
        if self.dropout:
            h = Dropout(0.5, self.deterministic, stream=self.stream)(h, example_keys)
        return x + self.norm()(conv()(reflect_pad(h, 1)))


class ResNetTranslator(_Generator):
    """CycleGAN's ResNet generator: images (B, H, W, C) in [-1, 1], H and W multiples of 4 ->
    (B, H, W, out_channels) in [-1, 1]. `resnet_9blocks` (256 px) / `resnet_6blocks` (<= 128 px).
    With `dropout` (pix2pix's default, --no_dropout off), dropout 0.5 in every block."""

    n_blocks: int = 9
    norm: str = "instance"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, example_keys: jax.Array | None = None
                 ) -> jax.Array:
        """example_keys: optional (B,) keys, one per image, to draw block i's dropout masks from
        (stream i, see `Dropout`); without them the masks come from the `dropout` rng."""
        _check_side(x, 4, "the ResNet generator")
        stochastic = self._stochastic(train)
        norm = lambda: self._norm(stochastic)
        use_bias = self.norm == "instance"
        h = nn.relu(norm()(_conv(self.ngf, 7, 1, 0, use_bias, self.dtype)(reflect_pad(x, 3))))
        for mult in (2, 4):
            h = nn.relu(norm()(_conv(self.ngf * mult, 3, 2, 1, use_bias, self.dtype)(h)))
        for block in range(self.n_blocks):
            h = ResNetBlock(norm, use_bias, self.dropout, not stochastic, block, self.dtype)(
                h, example_keys)
        for mult in (2, 1):
            # ConvTranspose2d(k 3, s 2, padding 1, output_padding 1): crop 1 in front, 0 behind
            up = ConvTranspose(self.ngf * mult, (3, 3), (2, 2), ((1, 0), (1, 0)),
                               use_bias=use_bias, kernel_init=INIT, dtype=self.dtype)
            h = nn.relu(norm()(up(h)))
        out = _conv(self.out_channels, 7, 1, 0, True, self.dtype)(reflect_pad(h, 3))
        return jnp.tanh(out.astype(jnp.float32))


class _Discriminator(nn.Module):
    """Fields shared by the two discriminators."""

    ndf: int = 64
    norm: str = "batch"
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    def _norm(self, train: bool) -> Callable:
        return norm_layer(self.norm, not train, self.bn_momentum, self.bn_axis_name, self.dtype)


class PatchGANDiscriminator(_Discriminator):
    """N-layer PatchGAN: images (B, H, W, C) -> logits (B, h, w), one per overlapping patch
    (70x70 for n_layers 3; 256 px input -> 30x30 logits)."""

    n_layers: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        use_bias = self.norm == "instance"
        h = nn.leaky_relu(_conv(self.ndf, 4, 2, 1, True, self.dtype)(x), 0.2)
        for n in range(1, self.n_layers + 1):
            stride = 2 if n < self.n_layers else 1
            h = _conv(self.ndf * min(2 ** n, 8), 4, stride, 1, use_bias, self.dtype)(h)
            h = nn.leaky_relu(self._norm(train)(h), 0.2)
        return _conv(1, 4, 1, 1, True)(h)[..., 0]  # float32 logits


class PixelGANDiscriminator(_Discriminator):
    """1x1 PixelGAN: images (B, H, W, C) -> logits (B, H, W), one per pixel."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        use_bias = self.norm == "instance"
        h = nn.leaky_relu(_conv(self.ndf, 1, 1, 0, True, self.dtype)(x), 0.2)
        h = nn.leaky_relu(self._norm(train)(_conv(self.ndf * 2, 1, 1, 0, use_bias, self.dtype)(h)),
                          0.2)
        return _conv(1, 1, 1, 0, use_bias)(h)[..., 0]  # float32 logits


# The reference's network names (`--netG`, `--netD`) -> modules; other fields as keyword args.
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet_256": lambda **kw: UNetGenerator(num_downs=8, **kw),
    "unet_128": lambda **kw: UNetGenerator(num_downs=7, **kw),
    "unet_32": lambda **kw: UNetGenerator(num_downs=5, **kw),  # 32 px down to 1x1
    "resnet_9blocks": lambda **kw: ResNetTranslator(n_blocks=9, **kw),
    "resnet_6blocks": lambda **kw: ResNetTranslator(n_blocks=6, **kw)}
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "basic": lambda **kw: PatchGANDiscriminator(n_layers=3, **kw),
    "n_layers": PatchGANDiscriminator,
    "pixel": PixelGANDiscriminator}

__all__ = ["DISCRIMINATORS", "Dropout", "GENERATORS", "NORMS", "PatchGANDiscriminator",
           "PixelGANDiscriminator", "ResNetBlock", "ResNetTranslator", "UNetGenerator",
           "normal_init", "norm_layer", "reflect_pad"]

