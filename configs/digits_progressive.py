"""Progressive growing (Karras et al. 2018) on the 16x16 digits: 4 -> 8 -> 16 px, small widths.

PGGAN's recipe scaled down for a CPU: WGAN-GP (lambda 10) with the drift term (epsilon 0.001),
Adam(1e-3, 0.0, 0.99) reset at every level change, equalized learning rate, pixel norm, minibatch
stddev; EMA generator 0.99 (PGGAN: 0.999 over far longer phases). 4x4 trains 800 steps; 8x8 and
16x16 each fade in over 400 steps, then train 800 (16x16 to the end). Channels 32 up to 8x8, 16 at
16x16.
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    base.progressive_section(config)
    config.model.latent_dim = 64
    p = config.progressive
    p.stable_steps = 800
    p.fade_steps = 400
    p.fmap_base = 128
    p.fmap_max = 32
    config.loss.name = "wgan"
    config.loss.gp_weight = 10.0
    base.adam(config.optim.g, 1e-3, 0.0, 0.99)
    base.adam(config.optim.d, 1e-3, 0.0, 0.99)
    # The EMA's horizon must be short against a phase: with 0.999 a level's new layers would keep
    # about half their initial weights in the EMA 700 steps after they start training.
    config.ema.decay = 0.99
    config.ema.start_step = 200
    config.train.batch_size = 64
    config.train.num_steps = 4000  # 800 + (400 + 800) * 2 = 3,200 to reach 16x16 at alpha = 1
    return config
