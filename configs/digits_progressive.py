"""Progressive growing (Karras et al. 2018) on the 16x16 digits: 4 -> 8 -> 16 px, small widths.

PGGAN's recipe scaled down for a CPU: WGAN-GP (lambda 10) with the drift term (epsilon 0.001),
Adam(1e-3, 0.0, 0.99), equalized learning rate, pixel norm, minibatch stddev; EMA generator 0.99
(PGGAN: 0.999 over far longer phases). 4x4 trains 800 steps; 8x8 and 16x16 each fade in over 400
steps, then train 800 (16x16 to the end). Channels 32 up to 8x8, 16 at 16x16.
"""

import ml_collections

from gan_jax.configs import digits_dcgan


def get_config():
    config = digits_dcgan.get_config()
    config.model.name = "progressive"
    config.model.latent_dim = 64
    config.progressive = ml_collections.ConfigDict(dict(
        start_resolution=4,      # level 0; each later level doubles it up to data.resolution
        stable_steps=800,        # steps at alpha = 1 per level (the last level trains on)
        fade_steps=400,          # steps over which a new level's alpha rises 0 -> 1
        fmap_base=128,           # channels at 2**k px: min(fmap_base / 2**(k - 1), fmap_max)
        fmap_max=32,
        mbstd_group_size=4,      # minibatch stddev group (must divide the per-device batch)
        drift_weight=0.001,      # epsilon_drift * E[D(x)^2] added to D's loss
    ))
    config.loss.name = "wgan"
    config.loss.gp_weight = 10.0
    for opt in (config.optim.g, config.optim.d):
        opt.learning_rate = 1e-3
        opt.b1 = 0.0
        opt.b2 = 0.99
    # The EMA's horizon must be short against a phase: with 0.999 a level's new layers would keep
    # about half their initial weights in the EMA 700 steps after they start training.
    config.ema.decay = 0.99
    config.train.num_steps = 4000  # 800 + (400 + 800) * 2 = 3,200 to reach 16x16 at alpha = 1
    return config
