"""Default experiment: DCGAN on scikit-learn's 8x8 handwritten digits, upsampled to 16x16.

The neutral base (configs/base.py) with this recipe's values: Radford et al.'s Adam(2e-4, 0.5)
and an EMA generator. Every key the code reads is listed in configs/base.py.
"""

import ml_collections

from gan_jax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()

    config.data.name = "digits"
    config.data.resolution = 16  # the 8x8 digits are upsampled bilinearly to 16x16
    config.data.channels = 1

    config.model.name = "dcgan"
    config.model.latent_dim = 64
    config.model.width = 64
    config.model.g_norm = "batch"
    config.model.d_norm = "batch"

    config.loss.name = "non_saturating"

    for opt in (config.optim.g, config.optim.d):
        opt.name = "adam"
        opt.learning_rate = 2e-4
        opt.b1 = 0.5
        opt.b2 = 0.999

    config.ema.decay = 0.999
    config.ema.start_step = 200

    config.train.batch_size = 64
    config.train.num_steps = 4000
    config.train.n_critic = 1
    config.train.log_every_steps = 100
    config.train.sample_every_steps = 500
    config.checkpoint.every_steps = 1000

    config.eval.every_steps = 1000
    config.eval.extractor = "classifier"
    config.eval.num_samples = 2000
    return config
