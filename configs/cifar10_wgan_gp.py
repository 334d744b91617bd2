"""WGAN-GP on CIFAR-10 (Gulrajani et al. 2017): lambda 10, n_critic 5, Adam(1e-4, 0.0, 0.9).

The critic has no batch normalisation (the penalty is per example); layer norm instead.
"""

from gan_jax.configs import cifar10_dcgan


def get_config():
    config = cifar10_dcgan.get_config()
    config.loss.name = "wgan"
    config.loss.gp_weight = 10.0
    config.model.d_norm = "layer"
    config.train.n_critic = 5
    for opt in (config.optim.g, config.optim.d):
        opt.learning_rate = 1e-4
        opt.b1 = 0.0
        opt.b2 = 0.9
    return config
