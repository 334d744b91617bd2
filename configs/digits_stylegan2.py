"""StyleGAN2 (config F layers, small widths) on the 16x16 digits: for tests and CPU runs.

Every StyleGAN2 knob is in `config.stylegan2` (configs/base.py `stylegan2_section`). Optimizer and
R1 settings follow NVlabs' stylegan2-ada-pytorch (train.py, training/training_loop.py): Adam(0.0025,
0, 0.99, eps 1e-8) adjusted for lazy regularisation (G interval 4, D 16), R1 every 16 steps as its
own D update weighted 16x, non-saturating loss.
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    base.stylegan2_section(config)
    config.model.latent_dim = 64      # z_dim
    config.model.num_classes = 0      # > 0: class-conditional G (embedding) and D (projection)
    s = config.stylegan2
    s.w_dim = 64
    s.mapping_layers = 2
    s.channel_base = 1024
    s.channel_max = 64
    s.style_mixing_prob = 0.9

    config.loss.name = "non_saturating"
    config.loss.r1_weight = 0.01      # gamma (NVlabs heuristic 0.0002 * res**2 / batch: 0.0008)
    config.loss.r1_every = 16         # lazy R1 (weighted x16 on those steps)
    config.loss.r1_mode = "separate"
    config.train.batch_size = 64
    config.train.num_steps = 4000
    config.train.log_every_steps = 96  # a multiple of r1_every, so the logged r1 is a real value

    # G: reg interval 4 as NVlabs (whose cifar config also keeps it with path length off)
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    base.lazy_adam(config.optim.d, 0.0025, 0.0, 0.99, 16)
    config.ema.decay = 0.999
    config.ema.start_step = 200
    return config
