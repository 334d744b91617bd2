"""WGAN-GP on CIFAR-10 (Gulrajani et al. 2017): Algorithm 1's lambda 10, n_critic 5,
Adam(1e-4, 0.0, 0.9); batch 64 and 200,000 generator iterations as the authors' gan_cifar.py.

The critic has no batch normalisation (the penalty is per example); layer norm instead.
"""

from gan_jax.configs import cifar10_dcgan, base


def get_config():
    config = cifar10_dcgan.get_config()  # the DCGAN networks and the evaluation
    config.loss.name = "wgan"
    config.loss.gp_weight = 10.0
    config.model.d_norm = "layer"
    base.adam(config.optim.g, 1e-4, 0.0, 0.9)
    base.adam(config.optim.d, 1e-4, 0.0, 0.9)
    config.train.batch_size = 64
    config.train.n_critic = 5
    config.train.num_steps = 200000
    return config
