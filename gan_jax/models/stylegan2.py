"""StyleGAN2, config F (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN").

Layer by layer the networks of NVlabs' stylegan2-ada-pytorch (`training/networks.py`), so that
parameter counts are equal (tested) and weights could be ported one to one:

G = mapping + synthesis.
  mapping: z -> pixel_norm -> [EqualDense(w_dim, lr_mul 0.01) -> lrelu] x num_layers -> w; with
    classes, pixel_norm(EqualDense(one_hot(label))) is concatenated to the normalised z. w_avg, the
    EMA (beta 0.995) of the batch mean of w, lives in the mutable collection 'w_avg' and is updated
    only when train=True (not by the style-mixing latents).
  synthesis: a learned 4x4 constant; per resolution r (4, 8, ..., R) a block of [modulated 3x3 conv
    (x2 upsampling from 8 on)] and a modulated 3x3 conv, each followed by per-pixel noise times a
    learned strength, bias and lrelu (leaky ReLU 0.2 times sqrt 2), then a modulated (not
    demodulated) 1x1 toRGB whose output is added to the x2-upsampled RGB image of the previous
    block ("skip" architecture). Channels at resolution r: min(channel_base // r, channel_max).
    One w per conv plus one for the last toRGB (num_ws = 2 log2 R - 2); a block's toRGB shares
    the w of the next block's first conv, as in NVlabs.
D ("resnet"): fromRGB 1x1 at the top; per resolution R..8 a block conv3x3 -> conv3x3 with x2
  downsampling, plus a 1x1 downsampling skip, both scaled by 1/sqrt(2) ("orig": no skip); then
  minibatch stddev, conv3x3, FC, FC out (with classes: the projection onto a mapped label
  embedding, 1/sqrt(cmap_dim)).

Deliberate differences from NVlabs (none changes a parameter): modulation is not fused (inputs are
scaled by the styles, the conv shares one weight across the batch, outputs are multiplied by the
demodulation coefficients: the same function); no fp16 and no activation clamping (their fp16
overflow guard); minibatch stddev groups consecutive examples (see `equalized.minibatch_stddev`);
the noise is drawn from per-example keys the caller passes (`noise_keys`, folded with the conv's
index), never from a module RNG, so images do not depend on the batch split or device count;
noise_keys=None means no noise (NVlabs' noise_mode='none').

`dtype` (train.compute_dtype; bfloat16 here, float16 is refused: it needs NVlabs' conv clamping)
is the dtype of the synthesis layers' and D's blocks' convolutions and activations, as NVlabs'
`use_fp16` blocks but at every resolution; as in NVlabs the mapping networks, the styles (affine
layers), the demodulation coefficients, the noise, the summed RGB image and D's epilogue (from
minibatch stddev to the logits) stay float32, and so do the params.

Training lives in `gan_jax.tasks.stylegan2` (StyleGAN2Task): non-saturating loss; lazy R1 (the
base task's `r1_every` and `r1_mode`); style mixing with a crossover layer drawn per example
(NVlabs: one per batch); path length regularisation through `styles` and `synthesize`.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax.models.equalized import (DEFAULT_FILTER, EqualConv, EqualDense, fir_filter, lrelu,
                                      minibatch_stddev, pixel_norm, upsample_2x)
from gan_jax.models.layers import conv, conv_transpose

Array = jax.Array


def resolutions(resolution: int) -> list[int]:
    """[4, 8, ..., resolution]; ValueError unless resolution is a power of two >= 4."""
    log2 = int(round(math.log2(resolution))) if resolution > 0 else 0
    if resolution < 4 or 2 ** log2 != resolution:
        raise ValueError(f"StyleGAN2 needs a power-of-two resolution >= 4 (4, 8, 16, 32, ...), "
                         f"got {resolution}")
    return [2 ** i for i in range(2, log2 + 1)]


def num_ws(resolution: int) -> int:
    """Per-layer styles of the synthesis network: one per conv and one for the last toRGB."""
    return 2 * len(resolutions(resolution))


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: min(channel_base // resolution, channel_max)."""
    return min(channel_base // resolution, channel_max)


# --- mapping -----------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """z (B, latent_dim) and/or labels (B,) -> w (B, w_dim); latent_dim=0: labels only (D's).

    With track_w_avg, the variable 'w_avg'/'w_avg' (w_dim,) is the EMA of the batch mean of w,
    updated when update_w_avg (which needs the collection to be mutable).
    """

    latent_dim: int
    w_dim: int
    num_layers: int = 8
    num_classes: int = 0
    lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    track_w_avg: bool = True

    @nn.compact
    def __call__(self, z: Array | None, labels: Array | None = None,
                 update_w_avg: bool = False) -> Array:
        parts = []
        if self.latent_dim:
            parts.append(pixel_norm(z.astype(jnp.float32)))
        if self.num_classes:
            if labels is None:
                raise ValueError("a conditional StyleGAN2 network needs labels")
            onehot = jax.nn.one_hot(labels, self.num_classes)
            parts.append(pixel_norm(EqualDense(self.w_dim, name="embed")(onehot)))
        x = jnp.concatenate(parts, axis=-1)
        for i in range(self.num_layers):
            x = EqualDense(self.w_dim, lr_multiplier=self.lr_multiplier, activation="lrelu",
                           name=f"fc{i}")(x)
        if self.track_w_avg:
            w_avg = self.variable("w_avg", "w_avg", jnp.zeros, (self.w_dim,))
            if update_w_avg:
                mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
                w_avg.value = mean + self.w_avg_beta * (w_avg.value - mean)
        return x


# --- synthesis ---------------------------------------------------------------------------------

def _demodulation(kernel: Array, styles: Array) -> Array:
    """(B, out): 1 / ||kernel * styles||, the norm over taps and input channels per example."""
    return jax.lax.rsqrt(jnp.dot(jnp.square(styles), jnp.sum(jnp.square(kernel), axis=(0, 1)))
                         + 1e-8)


def modulated_conv(x: Array, kernel: Array, styles: Array, demodulate: bool = True,
                   up: bool = False, resample_filter=DEFAULT_FILTER) -> Array:
    """conv(x, kernel * styles[b]) per example, optionally demodulated; up=True: x2 output.

    x (B, H, W, in), kernel (k, k, in, out), styles (B, in). Non-fused: the per-example weight
    kernel[..., i, o] * styles[b, i] (times its demodulation 1/||.||) is applied as (x * styles)
    conv kernel, times the demodulation of each output channel. up=True is NVlabs'
    conv2d_resample(up=2): a stride-2 transposed conv then the FIR filter (gain 4), padding (1, 1).
    """
    x = x * styles[:, None, None, :].astype(x.dtype)
    k = kernel.shape[0]
    if up:
        # conv_transpose takes (k, k, out, in); this equals NVlabs' up=2 path for the same weight
        y = conv_transpose(x, kernel.transpose(0, 1, 3, 2).astype(x.dtype), strides=2, padding=0)
        fw = len(resample_filter)
        pad = (k // 2 + (fw + 1) // 2 - (k - 1), k // 2 + (fw - 2) // 2 - (k - 2))
        y = fir_filter(y, resample_filter, pad, gain=4.0)
    elif k == 1:
        y = jnp.dot(x, kernel[0, 0].astype(x.dtype))
    else:
        y = conv(x, kernel.astype(x.dtype), strides=1, padding=k // 2)
    if demodulate:
        y = y * _demodulation(kernel, styles)[:, None, None, :].astype(y.dtype)
    return y


def layer_noise(noise_keys: Array, layer: int, size: int) -> Array:
    """(B, size, size, 1) standard normal noise of conv `layer`: fold_in(noise_keys[b], layer)."""
    return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, layer), (size, size, 1)))(
        noise_keys)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally x2 up) + noise * strength + bias -> lrelu."""

    features: int
    resolution: int
    layer_index: int
    up: bool = False
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, w: Array, noise_keys: Array | None) -> Array:
        styles = EqualDense(x.shape[-1], bias_init=1.0, name="affine")(w)
        kernel = self.param("kernel", nn.initializers.normal(1.0), (3, 3, x.shape[-1],
                                                                    self.features))
        x = modulated_conv(x.astype(self.dtype), kernel, styles, up=self.up,
                           resample_filter=self.resample_filter)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        if noise_keys is not None:
            noise = strength * layer_noise(noise_keys, self.layer_index, self.resolution)
            x = x + noise.astype(x.dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return lrelu(x + bias.astype(x.dtype))


class ToRGB(nn.Module):
    """Modulated (not demodulated) 1x1 conv to `channels`, styles scaled by 1/sqrt(in), + bias."""

    channels: int

    @nn.compact
    def __call__(self, x: Array, w: Array) -> Array:
        """In x's dtype, returned as float32 (NVlabs sums the RGB images in float32)."""
        fan_in = x.shape[-1]
        styles = EqualDense(fan_in, bias_init=1.0, name="affine")(w) / math.sqrt(fan_in)
        kernel = self.param("kernel", nn.initializers.normal(1.0), (1, 1, fan_in, self.channels))
        bias = self.param("bias", nn.initializers.zeros, (self.channels,))
        return modulated_conv(x, kernel, styles, demodulate=False).astype(jnp.float32) + bias


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> images (B, resolution, resolution, channels), 'skip' outputs."""

    resolution: int
    channels: int
    channel_base: int = 32768
    channel_max: int = 512
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ws: Array, noise_keys: Array | None = None) -> Array:
        ch = lambda r: channels_at(r, self.channel_base, self.channel_max)
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, ch(4)))
        x = jnp.broadcast_to(const, (ws.shape[0], *const.shape))
        img, w_index = None, 0
        for res in resolutions(self.resolution):
            if res > 4:
                x = SynthesisLayer(ch(res), res, w_index, up=True,
                                   resample_filter=self.resample_filter, dtype=self.dtype,
                                   name=f"b{res}_conv0")(x, ws[:, w_index], noise_keys)
                w_index += 1
            x = SynthesisLayer(ch(res), res, w_index, dtype=self.dtype, name=f"b{res}_conv1")(
                x, ws[:, w_index], noise_keys)
            w_index += 1
            y = ToRGB(self.channels, name=f"b{res}_torgb")(x, ws[:, w_index])
            img = y if img is None else upsample_2x(img, self.resample_filter) + y
        return img


class StyleGAN2Generator(nn.Module):
    """z (B, latent_dim) [, labels (B,)] -> images (B, R, R, channels), roughly in [-1, 1].

    noise_keys: (B,) typed keys for the per-pixel noise (None: no noise). mix_z (B, latent_dim)
    and mix_cutoff (B,) int: layers >= mix_cutoff[b] take their style from mix_z[b] (cutoff
    num_ws: no mixing). truncation_psi: w <- w_avg + psi (w - w_avg) (psi 1: unchanged, 0: w_avg).
    train=True updates w_avg (collection 'w_avg' must be mutable) from z's styles only.
    """

    resolution: int
    channels: int
    latent_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    num_classes: int = 0
    channel_base: int = 32768
    channel_max: int = 512
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    dtype: Any = jnp.float32  # the synthesis network's (the mapping runs in float32)

    @property
    def num_ws(self) -> int:
        return num_ws(self.resolution)

    def setup(self):
        self.mapping = MappingNetwork(self.latent_dim, self.w_dim, self.mapping_layers,
                                      self.num_classes, self.mapping_lr_multiplier,
                                      self.w_avg_beta)
        self.synthesis = SynthesisNetwork(self.resolution, self.channels, self.channel_base,
                                          self.channel_max, self.resample_filter, self.dtype)

    def styles(self, z: Array, labels: Array | None = None, train: bool = True, *,
               mix_z: Array | None = None, mix_cutoff: Array | None = None,
               truncation_psi: float | Array | None = None) -> Array:
        """ws (B, num_ws, w_dim): the mapping's output per layer, mixed and truncated."""
        w = self.mapping(z, labels, update_w_avg=train)
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, self.w_dim))
        if mix_z is not None:
            w_mix = self.mapping(mix_z, labels)
            layer = jnp.arange(self.num_ws)[None, :, None]
            ws = jnp.where(layer < jnp.asarray(mix_cutoff)[:, None, None], ws, w_mix[:, None])
        if truncation_psi is not None:
            w_avg = self.mapping.get_variable("w_avg", "w_avg")
            ws = w_avg + truncation_psi * (ws - w_avg)
        return ws

    def synthesize(self, ws: Array, noise_keys: Array | None = None) -> Array:
        """Images (B, R, R, channels) of per-layer styles ws (B, num_ws, w_dim)."""
        return self.synthesis(ws, noise_keys)

    def __call__(self, z: Array, labels: Array | None = None, train: bool = True, *,
                 noise_keys: Array | None = None, mix_z: Array | None = None,
                 mix_cutoff: Array | None = None, truncation_psi: float | Array | None = None
                 ) -> Array:
        ws = self.styles(z, labels, train, mix_z=mix_z, mix_cutoff=mix_cutoff,
                         truncation_psi=truncation_psi)
        return self.synthesize(ws, noise_keys)


# --- discriminator -----------------------------------------------------------------------------

class StyleGAN2Discriminator(nn.Module):
    """images (B, R, R, C) [, labels (B,)] -> logits (B,). architecture: 'resnet' | 'orig'."""

    resolution: int
    channel_base: int = 32768
    channel_max: int = 512
    architecture: str = "resnet"
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    num_classes: int = 0
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    resample_filter: tuple[float, ...] = DEFAULT_FILTER
    dtype: Any = jnp.float32  # the blocks' (the 4x4 epilogue runs in float32)

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None, train: bool = True) -> Array:
        if self.architecture not in ("resnet", "orig"):
            raise ValueError(f"unknown D architecture {self.architecture!r}; use resnet or orig")
        ch = lambda r: channels_at(r, self.channel_base, self.channel_max)
        f, dtype = self.resample_filter, self.dtype
        x = EqualConv(ch(self.resolution), 1, activation="lrelu", dtype=dtype, name="fromrgb")(x)
        for res in resolutions(self.resolution)[:0:-1]:  # R, ..., 8
            gain = math.sqrt(0.5) if self.architecture == "resnet" else 1.0
            y = x
            x = EqualConv(ch(res), 3, activation="lrelu", dtype=dtype, name=f"b{res}_conv0")(x)
            x = EqualConv(ch(res // 2), 3, down=True, activation="lrelu", resample_filter=f,
                          dtype=dtype, name=f"b{res}_conv1")(x) * gain
            if self.architecture == "resnet":
                x = x + EqualConv(ch(res // 2), 1, use_bias=False, down=True, resample_filter=f,
                                  dtype=dtype, name=f"b{res}_skip")(y) * gain
        # epilogue at 4x4
        x = x.astype(jnp.float32)
        if self.mbstd_num_features:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_features)
        x = EqualConv(ch(4), 3, activation="lrelu", name="b4_conv")(x)
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # NVlabs' (C, H, W) flattening order
        x = EqualDense(ch(4), activation="lrelu", name="b4_fc")(x)
        if not self.num_classes:
            return EqualDense(1, name="b4_out")(x)[:, 0]
        cmap_dim = ch(4)
        x = EqualDense(cmap_dim, name="b4_out")(x)
        cmap = MappingNetwork(0, cmap_dim, self.mapping_layers, self.num_classes,
                              self.mapping_lr_multiplier, track_w_avg=False, name="mapping")(
            None, labels)
        return jnp.sum(x * cmap, axis=-1) / math.sqrt(cmap_dim)


# --- builders (registered in gan_jax.models) -----------------------------------------------------

def build_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """(StyleGAN2Generator, StyleGAN2Discriminator) of `config.stylegan2`, `model` and `data`."""
    s, m, d = config.stylegan2, config.model, config.data
    widths = dict(channel_base=s.channel_base, channel_max=s.channel_max)
    lr_mul = dict(mapping_lr_multiplier=s.mapping_lr_multiplier)
    dtype = jnp.dtype(config.train.compute_dtype)
    return (StyleGAN2Generator(d.resolution, d.channels, m.latent_dim, s.w_dim, s.mapping_layers,
                               w_avg_beta=s.w_avg_beta, num_classes=m.num_classes, **lr_mul,
                               **widths, dtype=dtype),
            StyleGAN2Discriminator(d.resolution, architecture=s.d_architecture,
                                   mbstd_group_size=s.mbstd_group_size,
                                   mbstd_num_features=s.mbstd_num_features,
                                   num_classes=m.num_classes, mapping_layers=s.d_mapping_layers,
                                   **lr_mul, **widths, dtype=dtype))


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError ('config.KEY: ...') for a config the StyleGAN2 model cannot run."""
    s = config.stylegan2
    try:
        resolutions(config.data.resolution)
    except ValueError as e:
        raise ValueError(f"config.data.resolution: {e}") from None
    if s.channel_base < 1 or s.channel_max < 1 or s.w_dim < 1:
        raise ValueError("config.stylegan2.channel_base, channel_max, w_dim: must be >= 1")
    if min(s.channel_base // config.data.resolution, s.channel_max) < 1:
        raise ValueError(f"config.stylegan2.channel_base: {s.channel_base} // "
                         f"{config.data.resolution} px leaves no channels at the top resolution")
    if s.mapping_lr_multiplier <= 0:
        raise ValueError(f"config.stylegan2.mapping_lr_multiplier: must be > 0, got "
                         f"{s.mapping_lr_multiplier}")
    for key in ("mapping_layers", "d_mapping_layers"):
        if s[key] < 1:
            raise ValueError(f"config.stylegan2.{key}: must be >= 1, got {s[key]}")
    if s.d_architecture not in ("resnet", "orig"):
        raise ValueError(f"config.stylegan2.d_architecture: resnet or orig, got "
                         f"{s.d_architecture!r}")
    if not 0 <= s.style_mixing_prob <= 1:
        raise ValueError(f"config.stylegan2.style_mixing_prob: must be in [0, 1], got "
                         f"{s.style_mixing_prob}")
    if not 0 <= s.w_avg_beta < 1:
        raise ValueError(f"config.stylegan2.w_avg_beta: must be in [0, 1), got {s.w_avg_beta}")
    if s.mbstd_num_features < 0 or s.mbstd_group_size < 1:
        raise ValueError("config.stylegan2.mbstd_group_size must be >= 1 and mbstd_num_features "
                         ">= 0")
    batch = config.train.batch_size
    if s.mbstd_num_features and batch % min(s.mbstd_group_size, batch):
        raise ValueError(f"config.stylegan2.mbstd_group_size: {s.mbstd_group_size} must divide "
                         f"train.batch_size ({batch}) (and the per-device batch)")
    channels_4 = channels_at(4, s.channel_base, s.channel_max)
    if s.mbstd_num_features and channels_4 % s.mbstd_num_features:
        raise ValueError(f"config.stylegan2.mbstd_num_features: must divide the {channels_4} "
                         f"channels at 4x4")
