"""StyleGAN2 (config F layers, small widths) on the 16x16 digits: for tests and CPU runs.

Every StyleGAN2 knob is in `config.stylegan2`; the larger configs import this one. Optimizer and
R1 settings follow NVlabs' stylegan2-ada-pytorch (train.py): Adam(b1=0, b2=0.99, eps=1e-8), R1
every 16 D steps weighted 16x, non-saturating loss.
"""

import ml_collections

from gan_jax.configs import digits_dcgan


def lazy_adam(config: ml_collections.ConfigDict, learning_rate: float, reg_interval: int) -> None:
    """NVlabs' Adam for a network regularised every `reg_interval` steps: lr * r/(r+1) and betas
    ** (r/(r+1)) (their separate regulariser step; kept so the effective updates match)."""
    ratio = reg_interval / (reg_interval + 1)
    config.name = "adam"
    config.learning_rate = learning_rate * ratio
    config.b1 = 0.0
    config.b2 = 0.99 ** ratio
    config.eps = 1e-8


def get_config():
    config = digits_dcgan.get_config()
    config.model.name = "stylegan2"
    config.model.latent_dim = 64      # z_dim
    config.model.num_classes = 0      # > 0: class-conditional G (embedding) and D (projection)

    config.stylegan2 = ml_collections.ConfigDict(dict(
        w_dim=64,                     # NVlabs: w_dim = z_dim = 512
        mapping_layers=2,             # FC layers of G's mapping network (config F: 8; cifar: 2)
        d_mapping_layers=8,           # FC layers of D's label mapping (conditional; NVlabs: 8)
        mapping_lr_multiplier=0.01,
        w_avg_beta=0.995,             # EMA of the mean w (truncation target)
        channel_base=1024,            # channels at resolution r: min(channel_base//r, channel_max)
        channel_max=64,               # (config F: 32768 and 512; 256 px 'paper256': 16384)
        d_architecture="resnet",      # resnet (config F) | orig (no residual skips; NVlabs cifar)
        mbstd_group_size=4,           # minibatch stddev group (must divide the per-device batch)
        mbstd_num_features=1,
        style_mixing_prob=0.9,        # NVlabs cifar: 0
    ))

    config.loss.name = "non_saturating"
    config.loss.r1_weight = 0.01      # gamma (NVlabs heuristic 0.0002 * res**2 / batch: 0.0008)
    config.loss.r1_every = 16         # lazy R1 (weighted x16 on those steps)
    config.train.log_every_steps = 96  # a multiple of r1_every, so the logged r1 is a real value

    # G: reg interval 4 in NVlabs (path length reg., not implemented here; the lr factor is kept)
    lazy_adam(config.optim.g, 0.0025, 4)
    lazy_adam(config.optim.d, 0.0025, 16)
    config.ema.decay = 0.999
    config.ema.start_step = 200
    return config
