"""Model registry: `config.model.name` -> (generator, discriminator) flax modules."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import ml_collections

from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_stages
from gan_jax.models.mlp import MLPDiscriminator, MLPGenerator

Pair = tuple[nn.Module, nn.Module]


def _bn_axis(config: ml_collections.ConfigDict) -> str | None:
    return "data" if config.model.cross_replica_bn else None


def _dcgan(config: ml_collections.ConfigDict) -> Pair:
    m, d = config.model, config.data
    common = dict(width=m.width, bn_momentum=m.bn_momentum, bn_axis_name=_bn_axis(config))
    return (DCGANGenerator(d.resolution, d.channels, norm=m.g_norm, **common),
            DCGANDiscriminator(d.resolution, norm=m.d_norm, **common))


def _mlp(config: ml_collections.ConfigDict) -> Pair:
    m, d = config.model, config.data
    hidden = tuple(m.hidden_dims)
    return (MLPGenerator(d.resolution, d.channels, hidden, norm=m.g_norm,
                         bn_momentum=m.bn_momentum, bn_axis_name=_bn_axis(config)),
            MLPDiscriminator(hidden))


def _check_dcgan(config: ml_collections.ConfigDict) -> None:
    dcgan_stages(config.data.resolution)


MODELS: dict[str, Callable[[ml_collections.ConfigDict], Pair]] = {"dcgan": _dcgan, "mlp": _mlp}
# Checks that a config's resolution/norms fit the model, run before anything is compiled.
MODEL_CHECKS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {
    "dcgan": _check_dcgan, "mlp": lambda config: None}


def build_models(config: ml_collections.ConfigDict) -> Pair:
    """The (generator, discriminator) pair named by `config.model.name`."""
    return MODELS[config.model.name](config)
