"""Default experiment: DCGAN on scikit-learn's 8x8 handwritten digits, upsampled to 16x16.

Radford et al. 2016 (DCGAN): G with BatchNorm and ReLU, D with LeakyReLU(0.2), the
non-saturating loss, Adam(2e-4, 0.5). Deviations (measured together in experiments/digits_dcgan/):
- D has no BatchNorm and is regularised with R1, gamma = 1 on real images (Mescheder et al. 2018,
  "Which Training Methods for GANs do actually Converge?", eq. 9); DCGAN's D uses BatchNorm.
- width 32 (channels of G's last / D's first hidden layer; the PyTorch DCGAN example: 64), to keep
  10,000 steps short on 2 CPU cores.
- an EMA generator, decay 0.999 from step 200 (library choice; Yazici et al. 2019).
Every key the code reads is listed in configs/base.py.
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
    config.model.width = 32
    config.model.g_norm = "batch"
    config.model.d_norm = "none"

    config.loss.name = "non_saturating"
    config.loss.r1_weight = 1.0

    for opt in (config.optim.g, config.optim.d):
        opt.name = "adam"
        opt.learning_rate = 2e-4
        opt.b1 = 0.5
        opt.b2 = 0.999

    config.ema.decay = 0.999
    config.ema.start_step = 200

    config.train.batch_size = 64
    config.train.num_steps = 10000
    config.train.n_critic = 1
    config.train.log_every_steps = 100
    config.train.sample_every_steps = 1000
    config.checkpoint.every_steps = 2000

    config.eval.every_steps = 2000
    config.eval.extractor = "classifier"
    config.eval.num_samples = 2000
    return config
