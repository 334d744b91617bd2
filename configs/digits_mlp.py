"""Default experiment: an MLP GAN on scikit-learn's 8x8 handwritten digits at their native 8x8.

The MLP GAN of Goodfellow et al. 2014 (fully connected G and D, two hidden layers of 512; ReLU in
G, LeakyReLU(0.2) in D, no normalisation, tanh output) with the non-saturating loss and Adam(2e-4,
0.5, 0.999) as in DCGAN (Radford et al. 2016). Library choices, measured in experiments/digits_mlp/
and experiments/digits_dcgan/ ("what each change bought"):
- the digits at their native 8x8 (the 16x16 DCGAN recipe, configs/digits_dcgan.py, upsamples them);
- R1 on real images, gamma = 1 every step (Mescheder et al. 2018, eq. 9), the D regulariser;
- an EMA generator, decay 0.999 from step 200 (Yazici et al. 2019);
- 16,000 steps of batch 64, scored every 2,000 in the digits classifier's feature space.
Every key the code reads is listed in configs/base.py.
"""

import ml_collections

from gan_jax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()

    config.data.name = "digits"
    config.data.resolution = 8  # native: no resampling
    config.data.channels = 1

    config.model.name = "mlp"
    config.model.latent_dim = 64
    config.model.hidden_dims = (512, 512)
    config.model.g_norm = "none"
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
    config.train.num_steps = 16000
    config.train.n_critic = 1
    config.train.log_every_steps = 100
    config.train.sample_every_steps = 1000
    config.checkpoint.every_steps = 2000

    config.eval.every_steps = 2000
    config.eval.extractor = "classifier"
    config.eval.num_samples = 2000
    return config
