"""Optax optimizers from config: `optim.g` and `optim.d` sections (keys: configs/base.py `optimizer`)."""

from __future__ import annotations

from typing import Callable

import ml_collections
import optax

SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict], optax.Schedule]] = {
    "constant": lambda c: optax.constant_schedule(c.learning_rate),
    "cosine": lambda c: optax.cosine_decay_schedule(c.learning_rate, c.decay_steps),
    "linear": lambda c: optax.linear_schedule(c.learning_rate, 0.0, c.decay_steps),
    "warmup_cosine": lambda c: optax.warmup_cosine_decay_schedule(
        0.0, c.learning_rate, c.warmup_steps, c.decay_steps),
    # pix2pix/CycleGAN's `--lr_policy linear` (junyanz options/train_options.py, models/networks.py
    # get_scheduler): constant for constant_steps, then linear to 0 over decay_steps (per update;
    # the reference steps it per epoch)
    "constant_linear": lambda c: optax.join_schedules(
        [optax.constant_schedule(c.learning_rate),
         optax.linear_schedule(c.learning_rate, 0.0, c.decay_steps)], [c.constant_steps]),
}

OPTIMIZERS: dict[str, Callable[[ml_collections.ConfigDict, optax.Schedule],
                               optax.GradientTransformation]] = {
    "adam": lambda c, lr: optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps),
    "adamw": lambda c, lr: optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps,
                                       weight_decay=c.weight_decay),
    # decay is torch's alpha; eps_in_sqrt=False is torch's g / (sqrt(v) + eps)
    "rmsprop": lambda c, lr: optax.rmsprop(lr, decay=c.decay, eps=c.eps,
                                           eps_in_sqrt=c.eps_in_sqrt, momentum=c.momentum or None),
    "sgd": lambda c, lr: optax.sgd(lr, momentum=c.momentum or None),
}


def make_optimizer(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The optimizer an `optim.g`/`optim.d` section describes, with optional global-norm clipping."""
    tx = OPTIMIZERS[c.name](c, SCHEDULES[c.schedule](c))
    if c.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(c.grad_clip_norm), tx)
    return tx
