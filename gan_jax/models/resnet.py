"""ResNet GANs: SNGAN (Miyato et al. 2018) and class-conditional BigGAN-style (Brock et al. 2019).

G: z -> Dense(base*base*C0) -> [GBlock]* -> BN -> ReLU -> Conv3x3 -> tanh, with
   GBlock(x) = Conv3x3(ReLU(BN(Conv3x3(up(ReLU(BN(x))))))) + Conv1x1(up(x)), up = nearest 2x.
D: OptimizedBlock -> [DBlock]* -> ReLU -> global sum pool -> Dense(1) (+ projection), with
   DBlock(x) = pool(Conv3x3(ReLU(Conv3x3(ReLU(x))))) + pool(Conv1x1(x)), pool = 2x2 average
   (the first conv keeps the input's width, as in SNGAN's Chainer code and torch-mimicry).
G upsamples by nearest neighbour, as the Chainer original (torch-mimicry uses bilinear).
With g_channels (256,)*4, d_channels (128,)*4, d_down (T, T, F, F) at 32 px this is the CIFAR
network of SNGAN and torch-mimicry's SNGAN-32.

Class conditioning (num_classes > 0): G's block norms are conditional BatchNorm (gain 1 + a, bias
b from the class) and D adds the projection term <embed(y), h> (Miyato & Koyama 2018). With
shared_dim > 0 the class enters G as one shared embedding that each block maps linearly to its
gains and biases, and with hierarchical=True each block also gets its own chunk of z (BigGAN).
Self-attention (SAGAN) runs after the block reaching `attention_resolution` in G and D.

Spectral normalisation divides each kernel by its largest singular value, estimated by one power
iteration per call from a vector `u` kept in the 'spectral' collection. `u` is updated only when
training, so it is part of the train state: checkpointed, resumed and deterministic.

`dtype` is the dtype of the convolutions and matmuls (and attention's products); params, BatchNorm
statistics, the power iteration (on the float32 kernel, cast after dividing by sigma), attention's
softmax, D's pooled features and logits, and G's images are float32 whatever it is.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import conv, downsample, upsample


def xavier_uniform(gain: float = 1.0) -> nn.initializers.Initializer:
    """PyTorch's xavier_uniform_(gain) for kernels whose last axis is the output."""
    return nn.initializers.variance_scaling(gain ** 2, "fan_avg", "uniform")


INITS = ("xavier", "N02")


def kernel_init(init: str, gain: float = 1.0) -> nn.initializers.Initializer:
    """Init of conv, dense and embedding weights: 'xavier' (xavier_uniform_(gain), SNGAN's
    gains) or 'N02' (N(0, 0.02) whatever the gain: BigGAN-PyTorch's --G_init/--D_init N02)."""
    return xavier_uniform(gain) if init == "xavier" else nn.initializers.normal(0.02)


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x), eps)


def spectral_normalize(module: nn.Module, kernel: jax.Array, update_stats: bool,
                       n_steps: int = 1) -> jax.Array:
    """kernel / sigma, sigma the top singular value of W = kernel.reshape(-1, out).T by power
    iteration from the module's 'spectral' variable 'u' (written back when update_stats)."""
    w = kernel.reshape(-1, kernel.shape[-1]).T  # (out, in): PyTorch's weight.view(out, -1)
    u_var = module.variable("spectral", "u", lambda: _l2_normalize(
        jax.random.normal(module.make_rng("params"), (w.shape[0],), w.dtype)))
    u = u_var.value
    for _ in range(n_steps):
        v = _l2_normalize(w.T @ u)
        u = _l2_normalize(w @ v)
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    sigma = u @ (w @ v)
    if update_stats and not module.is_initializing():
        u_var.value = u
    return kernel / sigma


class SNDense(nn.Module):
    """Dense layer, spectrally normalised when `spectral_norm`."""

    features: int
    use_bias: bool = True
    spectral_norm: bool = True
    kernel_init: nn.initializers.Initializer = xavier_uniform()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, update_stats: bool):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        if self.spectral_norm:
            kernel = spectral_normalize(self, kernel, update_stats)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        y = x @ kernel
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            y = y + bias.astype(y.dtype)
        return y


class SNConv(nn.Module):
    """Stride-1 'same' convolution (NHWC), spectrally normalised when `spectral_norm`; computed by
    `layers.conv`, whose gradients are fast on XLA:CPU."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    spectral_norm: bool = True
    kernel_init: nn.initializers.Initializer = xavier_uniform()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, update_stats: bool):
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        if self.spectral_norm:
            kernel = spectral_normalize(self, kernel, update_stats)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        if k == 1:
            y = jnp.einsum("bhwi,io->bhwo", x, kernel[0, 0])
        else:
            y = conv(x, kernel, (1, 1), ((k // 2, k // 2), (k // 2, k // 2)))
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            y = y + bias.astype(y.dtype)
        return y


class SNEmbed(nn.Module):
    """Class embedding (num_classes, features), spectrally normalised when `spectral_norm`."""

    num_classes: int
    features: int
    spectral_norm: bool = True
    embedding_init: nn.initializers.Initializer = xavier_uniform()

    @nn.compact
    def __call__(self, labels, update_stats: bool):
        table = self.param("embedding", self.embedding_init, (self.num_classes, self.features))
        if self.spectral_norm:
            table = spectral_normalize(self, table, update_stats)
        return table[labels]


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias come from `cond`: None (learned, unconditional), int labels
    (one gain/bias per class) or vectors (gain 1 + Dense(cond), bias Dense(cond), BigGAN)."""

    num_classes: int = 0
    momentum: float = 0.9
    axis_name: str | None = None
    spectral_norm: bool = False
    weight_init: str = "xavier"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cond, train: bool):
        c = x.shape[-1]
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5,
                         use_scale=cond is None, use_bias=cond is None,
                         axis_name=self.axis_name, dtype=self.dtype)(x)
        if cond is None:
            return x
        if jnp.issubdtype(cond.dtype, jnp.integer):
            gain = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones, name="gain",
                            dtype=self.dtype)(cond)
            bias = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros,
                            name="bias", dtype=self.dtype)(cond)
        else:
            dense = lambda name: SNDense(c, use_bias=False, spectral_norm=self.spectral_norm,
                                         kernel_init=kernel_init(self.weight_init), name=name,
                                         dtype=self.dtype)
            gain = 1.0 + dense("gain")(cond, train)
            bias = dense("bias")(cond, train)
        return x * gain[:, None, None, :] + bias[:, None, None, :]


class SelfAttention(nn.Module):
    """SAGAN self-attention: x + gamma * o(softmax(theta(x) phi(x)^T) g(x)), gamma starts at 0;
    phi and g are max-pooled 2x as in BigGAN."""

    spectral_norm: bool = True
    weight_init: str = "xavier"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, update_stats: bool):
        b, h, w, c = x.shape
        conv1 = lambda f, name: SNConv(f, 1, use_bias=False, spectral_norm=self.spectral_norm,
                                       kernel_init=kernel_init(self.weight_init), name=name,
                                       dtype=self.dtype)
        pool = lambda y: nn.max_pool(y, (2, 2), (2, 2))
        theta = conv1(c // 8, "theta")(x, update_stats).reshape(b, h * w, c // 8)
        phi = pool(conv1(c // 8, "phi")(x, update_stats)).reshape(b, -1, c // 8)
        g = pool(conv1(c // 2, "g")(x, update_stats)).reshape(b, -1, c // 2)
        logits = (theta @ phi.transpose(0, 2, 1)).astype(jnp.float32)
        attention = jax.nn.softmax(logits, axis=-1).astype(g.dtype)
        o = conv1(c, "o")((attention @ g).reshape(b, h, w, c // 2), update_stats)
        gamma = self.param("gamma", nn.initializers.zeros_init(), ())
        return x + gamma.astype(o.dtype) * o


class GBlock(nn.Module):
    """Upsampling residual block of G (norm -> ReLU -> up -> conv3 -> norm -> ReLU -> conv3)."""

    features: int
    num_classes: int = 0
    spectral_norm: bool = False
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    weight_init: str = "xavier"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cond, train: bool):
        norm = lambda: ConditionalBatchNorm(self.num_classes, self.bn_momentum, self.bn_axis_name,
                                            self.spectral_norm, self.weight_init, self.dtype)
        sn_conv = lambda k, gain: SNConv(self.features, k, spectral_norm=self.spectral_norm,
                                         kernel_init=kernel_init(self.weight_init, gain),
                                         dtype=self.dtype)
        h = upsample(nn.relu(norm()(x, cond, train)), 2)
        h = sn_conv(3, 2 ** 0.5)(h, train)
        h = nn.relu(norm()(h, cond, train))
        h = sn_conv(3, 2 ** 0.5)(h, train)
        return h + sn_conv(1, 1.0)(upsample(x, 2), train)


class DBlock(nn.Module):
    """Residual block of D; `optimized` is the first block (no ReLU before its first conv, the
    shortcut pools first)."""

    features: int
    down: bool = True
    optimized: bool = False
    spectral_norm: bool = True
    weight_init: str = "xavier"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, update_stats: bool):
        sn_conv = lambda f, k, gain: SNConv(f, k, spectral_norm=self.spectral_norm,
                                            kernel_init=kernel_init(self.weight_init, gain),
                                            dtype=self.dtype)
        pool = (lambda y: downsample(y, 2)) if self.down else (lambda y: y)
        # hidden width: the output's in the optimized block, else the input's (SNGAN's D)
        hidden = self.features if self.optimized else x.shape[-1]
        h = x if self.optimized else nn.relu(x)
        h = sn_conv(hidden, 3, 2 ** 0.5)(h, update_stats)
        h = pool(sn_conv(self.features, 3, 2 ** 0.5)(nn.relu(h), update_stats))
        if self.optimized:
            shortcut = sn_conv(self.features, 1, 1.0)(pool(x), update_stats)
        elif self.down or x.shape[-1] != self.features:
            shortcut = pool(sn_conv(self.features, 1, 1.0)(x, update_stats))
        else:
            shortcut = x
        return h + shortcut


def generator_base(resolution: int, num_blocks: int) -> int:
    """Side of G's first feature map: resolution / 2**num_blocks; ValueError when not whole."""
    base, rest = divmod(resolution, 2 ** num_blocks)
    if rest or base < 2:
        raise ValueError(
            f"a ResNet generator with {num_blocks} upsampling blocks cannot produce {resolution}x"
            f"{resolution} images: the resolution must be a multiple of {2 ** num_blocks} and at "
            f"least {2 ** (num_blocks + 1)} (set model.g_channels to one more entry than blocks)")
    return base


class ResNetGenerator(nn.Module):
    """z (B, latent), labels (B,) or None -> images (B, resolution, resolution, channels) in [-1, 1].

    channels: (C0, C1, ..., Cn): C0 at the base resolution, block i outputs C_i (n blocks, each 2x).
    init: weights' init (`kernel_init`); with 'xavier' the shared class embedding keeps flax's
    N(0, 1) default (PyTorch's nn.Embedding), with 'N02' it is N(0, 0.02) as every other weight.
    """

    resolution: int
    out_channels: int
    channels: Sequence[int] = (256, 256, 256, 256)
    num_classes: int = 0
    shared_dim: int = 0
    hierarchical: bool = False
    attention_resolution: int = 0
    spectral_norm: bool = False
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    weight_init: str = "xavier"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, labels=None, train: bool = True):
        num_blocks = len(self.channels) - 1
        base = generator_base(self.resolution, num_blocks)
        if self.hierarchical:
            chunks = jnp.split(z, num_blocks + 1, axis=-1)
            z, block_z = chunks[0], chunks[1:]
        else:
            block_z = [None] * num_blocks
        if not self.num_classes:
            conds = [None] * num_blocks
        elif self.shared_dim:
            embed_init = (nn.linear.default_embed_init if self.weight_init == "xavier"
                          else kernel_init(self.weight_init))
            shared = nn.Embed(self.num_classes, self.shared_dim, embedding_init=embed_init,
                              name="shared")(labels)
            conds = [shared if zi is None else jnp.concatenate([shared, zi], -1) for zi in block_z]
        else:
            conds = [labels] * num_blocks
        c0 = self.channels[0]
        x = SNDense(base * base * c0, spectral_norm=self.spectral_norm,
                    kernel_init=kernel_init(self.weight_init), dtype=self.dtype)(z, train)
        x = x.reshape(z.shape[0], base, base, c0)
        size = base
        for features, cond in zip(self.channels[1:], conds):
            x = GBlock(features, self.num_classes, self.spectral_norm, self.bn_momentum,
                       self.bn_axis_name, self.weight_init, self.dtype)(x, cond, train)
            size *= 2
            if size == self.attention_resolution:
                x = SelfAttention(self.spectral_norm, self.weight_init, self.dtype)(x, train)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                 epsilon=1e-5, axis_name=self.bn_axis_name, dtype=self.dtype)(x))
        x = SNConv(self.out_channels, 3, spectral_norm=self.spectral_norm,
                   kernel_init=kernel_init(self.weight_init), dtype=self.dtype)(x, train)
        return jnp.tanh(x.astype(jnp.float32))


class ResNetDiscriminator(nn.Module):
    """images (B, H, W, C), labels (B,) or None -> logits (B,).

    channels[i] / down[i]: output channels and 2x average-pooling of block i (block 0 is the
    optimized block).
    """

    channels: Sequence[int] = (128, 128, 128, 128)
    down: Sequence[bool] = (True, True, False, False)
    num_classes: int = 0
    attention_resolution: int = 0
    spectral_norm: bool = True
    weight_init: str = "xavier"  # weights' init: see `kernel_init`
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, train: bool = True):
        h = x
        for i, (features, down) in enumerate(zip(self.channels, self.down)):
            h = DBlock(features, down, optimized=i == 0, spectral_norm=self.spectral_norm,
                       weight_init=self.weight_init, dtype=self.dtype)(h, train)
            if h.shape[1] == self.attention_resolution and (i == 0 or down):
                h = SelfAttention(self.spectral_norm, self.weight_init, self.dtype)(h, train)
        h = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))
        out = SNDense(1, spectral_norm=self.spectral_norm,
                      kernel_init=kernel_init(self.weight_init))(h, train)[:, 0]
        if self.num_classes:
            embed = SNEmbed(self.num_classes, h.shape[-1], self.spectral_norm,
                            embedding_init=kernel_init(self.weight_init), name="projection")
            out = out + jnp.sum(embed(labels, train) * h, axis=-1)
        return out
