"""Inpainting networks of DeepFill v2 (Yu et al. 2019, "Free-Form Image Inpainting with Gated
Convolution"), layer by layer as JiahuiYu/generative_inpainting `inpaint_model.py`
(`build_inpaint_net`, `build_sn_patch_gan_discriminator`) and `inpaint_ops.py` (`gen_conv`,
`gen_deconv`, `dis_conv`).

* Gated convolution (`gen_conv`): one conv with 2F outputs split into features f and gates g;
  out = act(f) * sigmoid(g), act ELU. The reference's `gen_conv(x, cnum)` returns cnum / 2
  channels; `GatedConv(F)` returns F (mmagic's `SimpleGatedConvModule` convention), so the
  reference's cnum = 48 is width 24 here (mmagic's channel_factor 0.75 of 32). 'SAME' zero padding
  (inpaint.yml padding: 'SAME'); upsampling (`gen_deconv`) is nearest x2 then a 3x3 gated conv;
  the output layer is a plain 3x3 conv, then tanh.
* G input: concat(x * (1 - m), ones, m) (`build_inpaint_net`), 1 = missing.
* Coarse network (stage 1): gated convs 5x5 w, 3x3/2 2w, 2w, 3x3/2 4w, 4w, 4w, dilated 4w at
  rates 2, 4, 8, 16, 4w, 4w, up 2w, 2w, up w, w/2, out. `GatedEncoderDecoder` is this network
  alone (model.generator='encoder_decoder', for small images: the dilation rates are the
  `dilations` field).
* Refinement (stage 2) on the composited coarse result x1 * m + x * (1 - m) (3 channels): a
  dilated branch (5x5 w, 3x3/2 w, 2w, 3x3/2 2w, 4w, 4w, dilated 4w x4) and an attention branch
  (5x5 w, 3x3/2 w, 2w, 3x3/2 4w, 4w, 4w with ReLU features, contextual attention, 4w, 4w),
  concatenated, then the coarse network's decoder.
* Contextual attention (`contextual_attention` in inpaint_ops.py, as build_inpaint_net calls it:
  ksize 3, stride 1, rate 2, fuse_k 3, softmax_scale 10, foreground = background = the features,
  the mask resized to them): features and mask downscaled by `rate` (TF1's nearest resize with
  align_corners, neuralgym's `resize`); every 3x3 patch of the downscaled map scored against every
  3x3 background patch divided by its norm (the reference normalises the background patches
  only); scores propagated along both diagonals (`fuse`, identity kernel of fuse_k, once in
  row-major and once in column-major order); patches touching the hole zeroed before and after a
  softmax of scale 10; the weights paste the full-resolution 2*rate x 2*rate patches at stride
  `rate` (transposed conv), divided by 4. One mask per example (the reference: one per batch);
  the offset-flow picture is left out.
* SN-PatchGAN D (`dis_conv`, `build_sn_patch_gan_discriminator`): `n_layers` (reference 6) 5x5
  stride-2 'SAME' convs, widths ndf * min(2^i, 4) (64, 128, 256, 256, 256, 256), spectral norm
  (`models.resnet.spectral_normalize`, 'spectral' collection), LeakyReLU 0.2 after every conv
  (the last too); its output, flattened per image, is the patch logits (B, h * w * C).
Weights: Glorot uniform, biases 0 (tf.layers.conv2d's defaults).

Mixed precision (`dtype`, train.compute_dtype float32 or bfloat16): every gated conv, the output
conv and D's convs but its last run in `dtype` (params, the spectral-norm iteration and the bias
additions' params stay float32); contextual attention (its scores and softmax), G's tanh outputs
and D's last conv (its logits) are float32.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.layers import conv, upsample
from gan_jax.models.resnet import spectral_normalize

Array = jax.Array
KERNEL_INIT = nn.initializers.xavier_uniform()  # tf.layers.conv2d's glorot_uniform


def same_padding(size: int, kernel: int, stride: int, rate: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' (lo, hi) zero padding of one axis: the output has ceil(size / stride)."""
    extent = (kernel - 1) * rate + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _conv2d(x: Array, kernel: Array, stride: int, rate: int) -> Array:
    """'SAME' conv, NHWC/HWIO: `layers.conv` (fast CPU gradients) undilated, XLA's otherwise."""
    k = kernel.shape[0]
    pads = tuple(same_padding(n, k, stride, rate) for n in x.shape[1:3])
    if rate == 1:
        return conv(x, kernel, (stride, stride), pads)
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads, rhs_dilation=(rate, rate),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def resize_nearest(x: Array, height: int, width: int) -> Array:
    """TF1 `resize_nearest_neighbor(align_corners=True)` (neuralgym `resize`'s default), NHWC:
    output row i is input row round(i * (H - 1) / (height - 1)), columns alike."""
    def rows(size: int, new: int) -> np.ndarray:
        scale = (size - 1) / (new - 1) if new > 1 else 0.0
        return np.minimum(np.floor(np.arange(new) * scale + 0.5).astype(int), size - 1)

    return x[:, rows(x.shape[1], height)][:, :, rows(x.shape[2], width)]


def extract_patches(x: Array, size: int, stride: int) -> Array:
    """`tf.extract_image_patches` with 'SAME' zero padding: (B, H, W, C) -> (B, h * w, size,
    size, C), the patches in row-major order of their top-left corners."""
    pads = [same_padding(n, size, stride) for n in x.shape[1:3]]
    p = jax.lax.conv_general_dilated_patches(x, (size, size), (stride, stride), pads,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return p.reshape(x.shape[0], -1, x.shape[-1], size, size).transpose(0, 1, 3, 4, 2)


def fuse_scores(scores: Array, k: int) -> Array:
    """The reference's `fuse`: (..., F, L) -> (..., F, L), the 'SAME' convolution of the score
    matrix with a k x k identity kernel, out[i, j] = sum_d scores[i + d, j + d] (zero outside)."""
    lo = (k - 1) // 2
    padded = jnp.pad(scores, [(0, 0)] * (scores.ndim - 2) + [(lo, k - 1 - lo)] * 2)
    f, n = scores.shape[-2:]
    return sum(padded[..., d:d + f, d:d + n] for d in range(k))


def attention_weights(features: Array, mask: Array, ksize: int = 3, fuse_k: int = 3,
                      softmax_scale: float = 10.0) -> Array:
    """Contextual attention's weights on an already downscaled map: features (B, h, w, C), mask
    (B, h, w, 1) with 1 = missing -> (B, h, w, h * w), weight of background patch l (row-major) at
    each location; 0 for every patch that touches the hole (see the module docstring)."""
    b, h, w, _ = features.shape
    patches = extract_patches(features, ksize, 1).reshape(b, h * w, -1)
    # max(|p|, 1e-4) as sqrt(max(|p|^2, 1e-8)): the same value, finite gradients at |p| = 0
    normed = patches / jnp.sqrt(jnp.maximum(jnp.sum(patches ** 2, -1, keepdims=True), 1e-8))
    scores = fuse_scores(jnp.einsum("bik,blk->bil", patches, normed), fuse_k)
    scores = scores.reshape(b, h, w, h, w).transpose(0, 2, 1, 4, 3).reshape(b, h * w, h * w)
    scores = fuse_scores(scores, fuse_k)  # the same along columns
    scores = scores.reshape(b, w, h, w, h).transpose(0, 2, 1, 4, 3).reshape(b, h, w, h * w)
    known = jnp.all(extract_patches(mask, ksize, 1) == 0, axis=(2, 3, 4))[:, None, None, :]
    return jax.nn.softmax(jnp.where(known, scores, 0.0) * softmax_scale, axis=-1) * known


def contextual_attention(features: Array, mask: Array, rate: int = 2) -> Array:
    """DeepFill's contextual attention of a feature map on itself: features (B, H, W, C), mask
    (B, H, W, 1) at their size, 1 = missing -> (B, H, W, C), every location rebuilt from the
    known patches it matches (see the module docstring); pure, differentiable."""
    b, height, width, channels = features.shape
    h, w = height // rate, width // rate
    weights = attention_weights(resize_nearest(features, h, w), resize_nearest(mask, h, w))
    size = 2 * rate
    raw = extract_patches(features, size, rate)  # (B, h * w, size, size, C)
    # the transposed conv of the weights with the raw patches (HWIO of the forward conv: I = C)
    pads = []
    for full, n in ((height, h), (width, w)):
        lo = size - 1 - same_padding(full, size, rate)[0]
        pads.append((lo, full - (n - 1) * rate - 1 - lo + size - 1))
    paste = lambda y, k: jax.lax.conv_transpose(
        y[None], k, (rate, rate), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        transpose_kernel=True)[0]
    return jax.vmap(paste)(weights, raw.transpose(0, 2, 3, 4, 1)) / 4.0


class GatedConv(nn.Module):
    """DeepFill v2's gated conv: act(conv_f(x)) * sigmoid(conv_g(x)), `features` channels out; one
    kernel (k, k, C, 2 * features) whose first half of outputs are f, the second g."""

    features: int
    kernel_size: int = 3
    stride: int = 1
    rate: int = 1
    activation: Callable[[Array], Array] = nn.elu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        kernel = self.param("kernel", KERNEL_INIT, (k, k, x.shape[-1], 2 * self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (2 * self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        f, g = jnp.split(_conv2d(x, kernel, self.stride, self.rate) + bias, 2, axis=-1)
        return self.activation(f) * jax.nn.sigmoid(g)


class OutputConv(nn.Module):
    """The last layer (`gen_conv(x, 3, activation=None)` then tanh): a plain 3x3 conv."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", KERNEL_INIT, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return jnp.tanh((_conv2d(x, kernel, 1, 1) + bias).astype(jnp.float32))


class Decoder(nn.Module):
    """4w, 4w, up 2w, 2w, up w, w/2, out (conv11-17 / allconv11-17)."""

    width: int
    out_channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        w, dt = self.width, self.dtype
        x = GatedConv(4 * w, dtype=dt)(GatedConv(4 * w, dtype=dt)(x))
        x = GatedConv(2 * w, dtype=dt)(GatedConv(2 * w, dtype=dt)(upsample(x, 2)))
        x = GatedConv(w // 2, dtype=dt)(GatedConv(w, dtype=dt)(upsample(x, 2)))
        return OutputConv(self.out_channels, dt)(x)


class Encoder(nn.Module):
    """Six gated convs (5x5, then 3x3; strides 1, 2, 1, 2, 1, 1) of `widths`, then dilated 3x3
    convs at `dilations`; the last plain conv's features use `last_activation`."""

    widths: tuple[int, ...]
    dilations: tuple[int, ...] = ()
    last_activation: Callable[[Array], Array] = nn.elu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for i, (width, stride) in enumerate(zip(self.widths, (1, 2, 1, 2, 1, 1))):
            act = self.last_activation if i == len(self.widths) - 1 else nn.elu
            x = GatedConv(width, 5 if i == 0 else 3, stride, activation=act, dtype=self.dtype)(x)
        for rate in self.dilations:
            x = GatedConv(self.widths[-1], rate=rate, dtype=self.dtype)(x)
        return x


def generator_input(x: Array, mask: Array) -> Array:
    """concat(x * (1 - m), ones, m): the reference's G input, m (B, H, W, 1) with 1 = missing."""
    return jnp.concatenate([x * (1.0 - mask), jnp.ones_like(mask), mask], axis=-1)


class GatedEncoderDecoder(nn.Module):
    """DeepFill v2's coarse network alone: (x, mask) -> (G(x),), in [-1, 1]."""

    width: int = 24
    out_channels: int = 3
    dilations: tuple[int, ...] = (2, 4, 8, 16)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask: Array) -> tuple[Array, ...]:
        w = self.width
        h = Encoder((w, 2 * w, 2 * w, 4 * w, 4 * w, 4 * w), self.dilations, dtype=self.dtype)(
            generator_input(x, mask))
        return (Decoder(w, self.out_channels, self.dtype)(h),)


class TwoStageGenerator(nn.Module):
    """DeepFill v2's coarse-to-fine G: (x, mask) -> (coarse, refined), both in [-1, 1]; the
    refinement sees the coarse result composited into x (see the module docstring)."""

    width: int = 24
    out_channels: int = 3
    dilations: tuple[int, ...] = (2, 4, 8, 16)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask: Array) -> tuple[Array, ...]:
        w, dt = self.width, self.dtype
        (coarse,) = GatedEncoderDecoder(w, self.out_channels, self.dilations, dt)(x, mask)
        xnow = coarse * mask + x * (1.0 - mask)
        hallucinated = Encoder((w, w, 2 * w, 2 * w, 4 * w, 4 * w), self.dilations, dtype=dt)(xnow)
        attended = Encoder((w, w, 2 * w, 4 * w, 4 * w, 4 * w), last_activation=nn.relu,
                           dtype=dt)(xnow)
        attended = contextual_attention(attended.astype(jnp.float32),
                                        resize_nearest(mask, *attended.shape[1:3]))
        attended = GatedConv(4 * w, dtype=dt)(GatedConv(4 * w, dtype=dt)(attended))
        refined = Decoder(w, self.out_channels, dt)(jnp.concatenate([hallucinated, attended], -1))
        return coarse, refined


class SNConv(nn.Module):
    """5x5 stride-2 'SAME' conv with spectral norm and bias (`dis_conv` without its LeakyReLU)."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, update_stats: bool) -> Array:
        kernel = self.param("kernel", KERNEL_INIT, (5, 5, x.shape[-1], self.features))
        kernel = spectral_normalize(self, kernel, update_stats)  # in float32
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return _conv2d(x, kernel, 2, 1) + bias


class SNPatchDiscriminator(nn.Module):
    """SN-PatchGAN on concat(image, mask): (B, H, W, C + 1) -> patch logits (B, h * w * C').
    `train` updates the spectral-norm vectors ('spectral' collection)."""

    ndf: int = 64
    n_layers: int = 6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        for i in range(self.n_layers):
            last = i == self.n_layers - 1  # its output is the logits: float32
            x = SNConv(self.ndf * min(2 ** i, 4), jnp.float32 if last else self.dtype)(x, train)
            x = nn.leaky_relu(x, 0.2)
        return x.reshape(x.shape[0], -1)


GENERATORS = {"two_stage": TwoStageGenerator, "encoder_decoder": GatedEncoderDecoder}
