"""Progressive growing of GANs (Karras et al. 2018, "PGGAN"): the networks.

Params for every resolution exist from init, so the state pytree (and its checkpoints) never change
shape. Which resolution trains is a pure function of the train step,
`gan_jax.tasks.progressive.Schedule(step) -> (level, alpha)`: level 0 (`start_resolution`) trains
`stable_steps`; every later level first fades in over `fade_steps` (alpha rising linearly 0 -> 1),
then trains `stable_steps` at alpha = 1; the last level trains on. A run resumed at any step
therefore resumes in the same phase with the same alpha.

G and D pick their level with `nn.switch` over one static branch per level, so one compiled step
serves every phase and runs only the active branch (the params of other levels get exact zero
gradients).

G at level l: pixel-normalised z -> dense 4x4 -> conv3x3 -> [nearest x2, conv3x3, conv3x3] per
resolution up to the level's -> 1x1 toRGB (linear), lerped during the fade-in with the x2-upsampled
toRGB of level l-1 by alpha; then nearest-upsampled to the data resolution, so its output shape
never changes. Leaky ReLU 0.2 and pixel norm follow every conv.
D at level l: the input average-pooled to the level's resolution -> 1x1 fromRGB -> [conv3x3,
conv3x3, avg-pool x2] per resolution, where the first block's output is lerped during the fade-in
with the fromRGB of the input pooled once more (level l-1's path) -> minibatch stddev -> conv3x3 ->
dense -> dense(1). All layers use the equalized learning rate (N(0, 1) weights scaled at runtime by
He's constant). Channels of the block at 2**k px: min(fmap_base / 2**(k - 1), fmap_max), as
`nf(stage)` in the reference code (github.com/tkarras/progressive_growing_of_gans).

Mixed precision (`dtype`, train.compute_dtype float32 or bfloat16): G's dense and convs up to its
last block and D's fromRGB and blocks run in `dtype`; G's toRGB layers (so its images and the
fade-in lerp), D's 4x4 head (minibatch stddev, conv, dense, logits), pixel norm's statistics and
every param stay float32, as NVlabs runs only the high-resolution blocks in reduced precision.

`gan_jax.tasks.progressive` adds what the reference does around the networks: the schedule, reals
faded like the fakes (lerp between the level's image and its x2 down-up-sampled version), WGAN-GP
on the full-resolution images D receives, and the drift term epsilon * E[D(x)^2].
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax.models.equalized import SQRT2, EqualConv, EqualDense, minibatch_stddev, pixel_norm
from gan_jax.models.layers import downsample, upsample

Array = jax.Array


def level_resolutions(resolution: int, start_resolution: int) -> tuple[int, ...]:
    """Resolution of each level: start_resolution, 2x, ..., resolution; ValueError otherwise."""
    k0, k = math.log2(start_resolution), math.log2(resolution)
    if start_resolution < 4 or k0 != int(k0) or k != int(k) or resolution < start_resolution:
        raise ValueError(
            f"progressive growing needs powers of two with 4 <= start_resolution <= resolution, "
            f"got start_resolution={start_resolution}, resolution={resolution}")
    return tuple(start_resolution * 2 ** l for l in range(int(k - k0) + 1))


def num_features(stage: int, fmap_base: int, fmap_max: int) -> int:
    """The reference's nf(stage) = min(fmap_base / 2**stage, fmap_max); the block at 2**k px has
    nf(k - 1) channels."""
    return min(fmap_base // 2 ** stage, fmap_max)


def _lrelu(x: Array) -> Array:
    return nn.leaky_relu(x, 0.2)


def _he(layer: nn.Module, x: Array, gain: float = SQRT2) -> Array:
    """layer(gain * x): PGGAN's He gain (weights scaled by gain / sqrt(fan_in)) on an equalized
    layer whose weights are scaled by 1 / sqrt(fan_in); equal because the layer is linear in x
    before its bias."""
    return layer(gain * x)


# --- networks --------------------------------------------------------------------------------

class _GBlock(nn.Module):
    """Nearest x2, then two conv3x3, each followed by leaky ReLU and pixel norm."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = upsample(x, 2)
        for _ in range(2):
            x = pixel_norm(_lrelu(_he(EqualConv(self.features, 3, dtype=self.dtype), x)))
        return x


class _DBlock(nn.Module):
    """conv3x3 (features[0]), conv3x3 (features[1]), each with leaky ReLU, then avg-pool x2."""

    features: tuple[int, int]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        for f in self.features:
            x = _lrelu(_he(EqualConv(f, 3, dtype=self.dtype), x))
        return downsample(x, 2)


def _switch(module: nn.Module, level: Array, branches: list, *operands):
    """nn.switch over per-level branches. At init every branch runs (creating the params of every
    level) and the output is picked from theirs, without compiling a switch."""
    level = jnp.asarray(level, jnp.int32)
    if module.is_initializing():
        outs = jnp.stack([branch(module, *operands) for branch in branches])
        return outs[jnp.clip(level, 0, len(branches) - 1)]
    return nn.switch(level, branches, module, *operands)


class ProgressiveGenerator(nn.Module):
    """z (B, latent) -> images (B, resolution, resolution, channels) at (level, alpha).

    level: int32 scalar (traced is fine) in [0, number of levels); alpha: the fade-in weight of the
    level's new layers in [0, 1]. Labels are ignored (unconditional).
    """

    resolution: int
    channels: int
    start_resolution: int
    fmap_base: int
    fmap_max: int
    dtype: Any = jnp.float32

    def setup(self):
        self.resolutions = level_resolutions(self.resolution, self.start_resolution)
        top = int(math.log2(self.resolution))
        nf = lambda stage: num_features(stage, self.fmap_base, self.fmap_max)
        # The 4x4 dense layer has one bias per channel, as in the reference (not per pixel).
        self.dense = EqualDense(nf(1) * 16, use_bias=False, dtype=self.dtype)
        self.dense_bias = self.param("dense_bias", nn.initializers.zeros_init(), (nf(1),))
        self.conv = EqualConv(nf(1), 3, dtype=self.dtype)
        self.blocks = [_GBlock(nf(k - 1), self.dtype)
                       for k in range(3, top + 1)]  # blocks[k-3]: 2**k px
        self.to_rgb = [EqualConv(self.channels, 1) for _ in self.resolutions]

    def features(self, z: Array, resolution: int) -> Array:
        """The pixel-normed feature maps at `resolution`: (B, resolution, resolution, nf)."""
        x = _he(self.dense, pixel_norm(z), SQRT2 / 4)  # the reference's gain for this layer
        x = pixel_norm(_lrelu(x.reshape(z.shape[0], 4, 4, -1) + self.dense_bias.astype(x.dtype)))
        x = pixel_norm(_lrelu(_he(self.conv, x)))
        for block in self.blocks[:int(math.log2(resolution)) - 2]:
            x = block(x)
        return x

    def _level(self, level: int):
        r = self.resolutions[level]

        def branch(mdl, z, alpha):
            if level == 0:
                rgb = mdl.to_rgb[0](mdl.features(z, r))
            else:
                h = mdl.features(z, r // 2)
                old = upsample(mdl.to_rgb[level - 1](h), 2)
                new = mdl.to_rgb[level](mdl.blocks[int(math.log2(r)) - 3](h))
                # This form is exactly `new` at alpha = 1 and `old` at alpha = 0.
                rgb = alpha * new + (1.0 - alpha) * old
            return upsample(rgb, mdl.resolution // r)
        return branch

    @nn.compact
    def __call__(self, z: Array, labels: Array | None = None, train: bool = True, *,
                 level: Array, alpha: Array) -> Array:
        branches = [self._level(l) for l in range(len(self.resolutions))]
        return _switch(self, level, branches, z, jnp.asarray(alpha, jnp.float32))


class ProgressiveDiscriminator(nn.Module):
    """images (B, resolution, resolution, C) -> logits (B,) at (level, alpha), as the generator.

    Minibatch stddev groups `mbstd_group_size` consecutive examples (it must divide the local
    batch, or exceed it).
    """

    resolution: int
    start_resolution: int
    fmap_base: int
    fmap_max: int
    mbstd_group_size: int
    dtype: Any = jnp.float32

    def setup(self):
        self.resolutions = level_resolutions(self.resolution, self.start_resolution)
        top = int(math.log2(self.resolution))
        nf = lambda stage: num_features(stage, self.fmap_base, self.fmap_max)
        self.from_rgb = [EqualConv(nf(int(math.log2(r)) - 1), 1, dtype=self.dtype)
                         for r in self.resolutions]
        self.blocks = [_DBlock((nf(k - 1), nf(k - 2)), self.dtype)
                       for k in range(3, top + 1)]  # 2**k px in
        self.conv = EqualConv(nf(1), 3)
        self.dense = EqualDense(nf(0))
        self.out = EqualDense(1)

    def head(self, x: Array) -> Array:
        """The 4x4 block: minibatch stddev, conv3x3, dense, dense(1) (linear) -> (B,), in float32."""
        x = minibatch_stddev(x.astype(jnp.float32), self.mbstd_group_size)
        x = _lrelu(_he(self.conv, x))
        x = _lrelu(_he(self.dense, x.reshape(x.shape[0], -1)))
        return self.out(x)[:, 0]

    def _level(self, level: int):
        r = self.resolutions[level]

        def branch(mdl, x, alpha):
            x = downsample(x, mdl.resolution // r)
            h = _lrelu(_he(mdl.from_rgb[level], x))
            k = int(math.log2(r))  # h is at 2**k px
            if level > 0:
                new = mdl.blocks[k - 3](h)
                old = _lrelu(_he(mdl.from_rgb[level - 1], downsample(x, 2)))
                h = alpha * new + (1.0 - alpha) * old
                k -= 1
            for kk in range(k, 2, -1):
                h = mdl.blocks[kk - 3](h)
            return mdl.head(h)
        return branch

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None, train: bool = True, *,
                 level: Array, alpha: Array) -> Array:
        branches = [self._level(l) for l in range(len(self.resolutions))]
        return _switch(self, level, branches, x, jnp.asarray(alpha, jnp.float32))


# --- builders (registered in gan_jax.models) ---------------------------------------------------

def build_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """(ProgressiveGenerator, ProgressiveDiscriminator) of config.progressive and config.data."""
    p, d = config.progressive, config.data
    widths = dict(start_resolution=p.start_resolution, fmap_base=p.fmap_base, fmap_max=p.fmap_max,
                  dtype=jnp.dtype(config.train.compute_dtype))
    return (ProgressiveGenerator(d.resolution, d.channels, **widths),
            ProgressiveDiscriminator(d.resolution, mbstd_group_size=p.mbstd_group_size, **widths))


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError ('config.KEY: ...') for a config the progressive model cannot run."""
    p = config.progressive
    try:
        level_resolutions(config.data.resolution, p.start_resolution)
    except ValueError as e:
        raise ValueError(f"config.progressive.start_resolution: {e}") from None
    if p.stable_steps < 1:
        raise ValueError(f"config.progressive.stable_steps: must be >= 1, got {p.stable_steps}")
    if p.fade_steps < 0:
        raise ValueError(f"config.progressive.fade_steps: must be >= 0, got {p.fade_steps}")
    if p.fmap_max < 1 or p.fmap_base < config.data.resolution // 2:
        raise ValueError(f"config.progressive.fmap_base: the {config.data.resolution} px block "
                         f"needs fmap_base >= {config.data.resolution // 2} (and fmap_max >= 1) "
                         f"for at least one channel, got fmap_base={p.fmap_base}, "
                         f"fmap_max={p.fmap_max}")
    batch, group = config.train.batch_size, p.mbstd_group_size
    if group < 1 or (batch > group and batch % group):
        raise ValueError(f"config.progressive.mbstd_group_size: must be >= 1 and divide "
                         f"train.batch_size={batch} (per device too), got {group}")
    if p.drift_weight < 0:
        raise ValueError(f"config.progressive.drift_weight: must be >= 0, got {p.drift_weight}")
    if config.model.num_classes:
        raise ValueError("config.model.num_classes: the progressive model is unconditional; use 0")
