"""Model registry: `config.model.name` -> (generator, discriminator) flax modules, and the checks
that a config fits them. Flax modules only: what trains them is in gan_jax.tasks."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gan_jax.masks import check_kinds
from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_stages
from gan_jax.models import inpainting, pix2pix, progressive, stylegan2
from gan_jax.models.mlp import MLPDiscriminator, MLPGenerator
from gan_jax.models.resnet import INITS, ResNetDiscriminator, ResNetGenerator, generator_base

Pair = tuple[nn.Module, nn.Module]


def _bn_axis(config: ml_collections.ConfigDict) -> str | None:
    return "data" if config.model.cross_replica_bn else None


def _dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
    """The dtype of the layers' computations (`train.compute_dtype`)."""
    return jnp.dtype(config.train.compute_dtype)


def _dcgan(config: ml_collections.ConfigDict) -> Pair:
    m, d = config.model, config.data
    common = dict(width=m.width, bn_momentum=m.bn_momentum, bn_axis_name=_bn_axis(config),
                  dtype=_dtype(config))
    return (DCGANGenerator(d.resolution, d.channels, norm=m.g_norm, **common),
            DCGANDiscriminator(d.resolution, norm=m.d_norm, **common))


def _mlp(config: ml_collections.ConfigDict) -> Pair:
    m, d = config.model, config.data
    hidden = tuple(m.hidden_dims)
    return (MLPGenerator(d.resolution, d.channels, hidden, m.num_classes, norm=m.g_norm,
                         bn_momentum=m.bn_momentum, bn_axis_name=_bn_axis(config),
                         dtype=_dtype(config)),
            MLPDiscriminator(hidden, m.num_classes, dtype=_dtype(config)))


def _resnet(config: ml_collections.ConfigDict) -> Pair:
    m, d = config.model, config.data
    return (ResNetGenerator(d.resolution, d.channels, tuple(m.g_channels), m.num_classes,
                            m.shared_dim, m.hierarchical, m.attention_resolution,
                            m.g_spectral_norm, m.bn_momentum, _bn_axis(config), m.weight_init,
                            _dtype(config)),
            ResNetDiscriminator(tuple(m.d_channels), tuple(m.d_down), m.num_classes,
                                m.attention_resolution, m.d_spectral_norm, m.weight_init,
                                _dtype(config)))


def _unconditional(config: ml_collections.ConfigDict) -> None:
    if config.model.num_classes:
        raise ValueError(f"config.model.num_classes: model {config.model.name!r} is unconditional;"
                         f" set it to 0 or use model.name='mlp', 'resnet' or 'stylegan2'")


def _check_dcgan(config: ml_collections.ConfigDict) -> None:
    _unconditional(config)
    try:
        dcgan_stages(config.data.resolution)
    except ValueError as e:
        raise ValueError(f"config.data.resolution: {e}") from None


def _check_resnet(config: ml_collections.ConfigDict) -> None:
    m = config.model
    if m.weight_init not in INITS:
        raise ValueError(f"config.model.weight_init: {m.weight_init!r} is not one of "
                         f"{', '.join(INITS)}")
    blocks = len(m.g_channels) - 1
    try:
        generator_base(config.data.resolution, blocks)
    except ValueError as e:
        raise ValueError(f"config.data.resolution: {e}") from None
    if len(m.d_channels) != len(m.d_down) or not m.d_channels:
        raise ValueError(f"config.model.d_down: needs one entry per model.d_channels entry, got "
                         f"{len(m.d_down)} for {len(m.d_channels)}")
    if m.hierarchical and (not m.num_classes or not m.shared_dim):
        raise ValueError("config.model.hierarchical: the hierarchical latent feeds the shared class "
                         "embedding; it needs model.num_classes > 0 and model.shared_dim > 0")
    if m.hierarchical and m.latent_dim % (blocks + 1):
        raise ValueError(f"config.model.latent_dim: the hierarchical latent is split into "
                         f"{blocks + 1} equal chunks (one per G block, one for the input); "
                         f"{m.latent_dim} is not divisible by {blocks + 1}")
    channels = list(m.g_channels) + list(m.d_channels)
    if min(channels) < 1:
        raise ValueError(f"config.model.g_channels, d_channels: every entry must be >= 1, got "
                         f"{tuple(m.g_channels)} and {tuple(m.d_channels)}")
    if m.shared_dim < 0 or m.attention_resolution < 0:
        raise ValueError("config.model.shared_dim, attention_resolution: must be >= 0 (0: none)")
    if m.attention_resolution and min(channels) < 8:
        raise ValueError("config.model.attention_resolution: self-attention needs >= 8 channels")


def _cyclegan(config: ml_collections.ConfigDict) -> Pair:
    """The architectures of CycleGAN's generators (g_ab, g_ba) and discriminators (d_a, d_b):
    no dropout (the reference's CycleGAN default)."""
    m = config.model
    layers = {"n_layers": m.n_layers} if m.discriminator == "n_layers" else {}
    return (pix2pix.GENERATORS[m.generator](out_channels=config.data.channels, ngf=m.ngf,
                                            norm=m.norm, dropout=False, dtype=_dtype(config)),
            pix2pix.DISCRIMINATORS[m.discriminator](ndf=m.ndf, norm=m.norm, dtype=_dtype(config),
                                                    **layers))


def _check_load_size(config: ml_collections.ConfigDict) -> None:
    d = config.data
    if d.load_size and d.load_size < d.resolution:
        raise ValueError(f"config.data.load_size: {d.load_size} is below data.resolution "
                         f"{d.resolution}, the random crop's size; use >= {d.resolution} or 0")


def _check_cyclegan(config: ml_collections.ConfigDict) -> None:
    m, c, resolution = config.model, config.loss, config.data.resolution
    _unconditional(config)
    if m.generator not in ("resnet_6blocks", "resnet_9blocks"):
        raise ValueError(f"config.model.generator: CycleGAN uses resnet_6blocks (<= 128 px) or "
                         f"resnet_9blocks (256 px), got {m.generator!r}")
    if m.discriminator not in pix2pix.DISCRIMINATORS:
        raise ValueError(f"config.model.discriminator: one of {', '.join(pix2pix.DISCRIMINATORS)}, "
                         f"got {m.discriminator!r}")
    if m.norm != "instance":
        raise ValueError(f"config.model.norm: CycleGAN here uses instance norm (the reference's "
                         f"default; the networks keep no statistics), got {m.norm!r}")
    if resolution % 4:
        raise ValueError(f"config.data.resolution: the ResNet generator needs a multiple of 4, "
                         f"got {resolution}")
    n_layers = (m.n_layers if m.discriminator == "n_layers"
                else {"basic": 3, "pixel": 0}[m.discriminator])
    if resolution // 2 ** n_layers < 3:
        raise ValueError(f"config.model.n_layers: a PatchGAN with {n_layers} layers leaves no "
                         f"logits at {resolution} px; use fewer")
    _check_load_size(config)
    if min(c.cycle_weight, c.identity_weight, c.pool_size) < 0:
        raise ValueError("config.loss.cycle_weight, identity_weight, pool_size: must be >= 0")


def _pix2pix(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """pix2pix's G (A -> B) and conditional D (on concat(A, B))."""
    m, d = config.model, config.data
    d_axis = "data" if m.cross_replica_bn else None  # G's batch norm stays per device
    generator = pix2pix.GENERATORS[m.generator](
        out_channels=d.channels, ngf=m.ngf, norm=m.norm, dropout=m.dropout,
        paper_test_time=m.paper_test_time, bn_momentum=m.bn_momentum, dtype=_dtype(config))
    kw = dict(n_layers=m.n_layers) if m.discriminator == "n_layers" else {}
    discriminator = pix2pix.DISCRIMINATORS[m.discriminator](
        ndf=m.ndf, norm=m.norm, bn_momentum=m.bn_momentum, bn_axis_name=d_axis,
        dtype=_dtype(config), **kw)
    return generator, discriminator


def _check_pix2pix(config: ml_collections.ConfigDict) -> None:
    """ValueError starting with the offending key for a config pix2pix cannot run."""
    m, d, t = config.model, config.data, config.train
    generators = sorted(pix2pix.GENERATORS)
    if m.generator not in generators:
        raise ValueError(f"config.model.generator: {m.generator!r} is not one of {', '.join(generators)}")
    if m.discriminator not in pix2pix.DISCRIMINATORS:
        raise ValueError(f"config.model.discriminator: {m.discriminator!r} is not one of "
                         f"{', '.join(sorted(pix2pix.DISCRIMINATORS))}")
    if m.norm not in pix2pix.NORMS:
        raise ValueError(f"config.model.norm: {m.norm!r} is not one of {', '.join(pix2pix.NORMS)}")
    if min(m.ngf, m.ndf, m.n_layers) < 1:
        raise ValueError(f"config.model.ngf, ndf, n_layers: must be >= 1, got {m.ngf}, {m.ndf}, "
                         f"{m.n_layers}")
    side = 2 ** {"unet_32": 5, "unet_128": 7, "unet_256": 8}.get(m.generator, 2)
    if d.resolution % side:
        raise ValueError(f"config.data.resolution: {m.generator} takes sides that are multiples of "
                         f"{side}, got {d.resolution}")
    _check_load_size(config)
    if not d.dataset:
        raise ValueError("config.data.dataset: pix2pix needs paired data, e.g. 'edges2fashion' or "
                         "'pairs:/path/to/facades'")
    if m.num_classes:
        raise ValueError("config.model.num_classes: pix2pix is not class-conditional; set it to 0")
    if t.g_batch_size not in (0, t.batch_size):
        raise ValueError(f"config.train.g_batch_size: pix2pix's G step translates the real batch; "
                         f"set it to 0, got {t.g_batch_size}")


def _inpainting(config: ml_collections.ConfigDict) -> Pair:
    """DeepFill v2's G (two-stage or the coarse encoder-decoder) and SN-PatchGAN D."""
    m, d = config.model, config.data
    generator = inpainting.GENERATORS[m.generator](m.ngf, d.channels,
                                                   tuple(config.inpaint.dilations), _dtype(config))
    return generator, inpainting.SNPatchDiscriminator(m.ndf, m.n_layers, _dtype(config))


def _check_inpainting(config: ml_collections.ConfigDict) -> None:
    """ValueError starting with the offending key for a config inpainting cannot run."""
    m, c, resolution = config.model, config.inpaint, config.data.resolution
    _unconditional(config)
    if m.generator not in inpainting.GENERATORS:
        raise ValueError(f"config.model.generator: inpainting uses "
                         f"{' or '.join(inpainting.GENERATORS)}, got {m.generator!r}")
    if resolution % 4:
        raise ValueError(f"config.data.resolution: DeepFill's generator downsamples twice; use a "
                         f"multiple of 4, got {resolution}")
    if m.ngf < 2 or m.ndf < 1 or m.n_layers < 1:
        raise ValueError(f"config.model.ngf, ndf, n_layers: must be >= 2, >= 1, >= 1, got "
                         f"{m.ngf}, {m.ndf}, {m.n_layers}")
    try:
        check_kinds(tuple(c.mask_kinds))
    except ValueError as e:
        raise ValueError(f"config.inpaint.mask_kinds: {e}") from None
    lo, hi = c.area_range
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"config.inpaint.area_range: needs 0 <= low < high <= 1, got {lo}, {hi}")
    if min(c.gan_weight, c.hole_weight, c.valid_weight) < 0 or min(c.dilations, default=1) < 1:
        raise ValueError("config.inpaint.gan_weight, hole_weight, valid_weight, dilations: "
                         "weights must be >= 0 and dilation rates >= 1")


MODELS: dict[str, Callable[[ml_collections.ConfigDict], Pair]] = {
    "dcgan": _dcgan, "mlp": _mlp, "resnet": _resnet,
    "stylegan2": stylegan2.build_models, "progressive": progressive.build_models,
    "cyclegan": _cyclegan, "pix2pix": _pix2pix, "inpainting": _inpainting}
# train.compute_dtype values each model's layers run in (the models missing here: float32 only);
# StyleGAN2's float16 would need NVlabs' conv clamping (not implemented)
MODEL_COMPUTE_DTYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("dcgan", "mlp", "resnet"), ("float32", "bfloat16", "float16")),
    "stylegan2": ("float32", "bfloat16"),
    # pix2pix, CycleGAN, progressive, inpainting: bfloat16 (float16 would get the same loss
    # scaling, but is not tested)
    **dict.fromkeys(("pix2pix", "cyclegan", "progressive", "inpainting"), ("float32", "bfloat16"))}
# Checks that a config fits the model, run before anything is compiled: ValueError whose text
# starts with the offending key ("config.data.resolution: ...").
MODEL_CHECKS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {
    "dcgan": _check_dcgan, "mlp": lambda config: None, "resnet": _check_resnet,
    "stylegan2": stylegan2.check_config, "progressive": progressive.check_config,
    "cyclegan": _check_cyclegan, "pix2pix": _check_pix2pix, "inpainting": _check_inpainting}


def build_models(config: ml_collections.ConfigDict) -> Pair:
    """The (generator, discriminator) pair named by `config.model.name`."""
    return MODELS[config.model.name](config)
