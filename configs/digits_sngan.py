"""SNGAN (Miyato et al. 2018) on the built-in 8x8 digits at 16x16: ResNet G and D, spectral norm
in D, hinge loss, Adam(2e-4, 0, 0.9) — the CIFAR recipe (configs/cifar10_sngan.py) narrowed to 64
channels, with n_critic 2 instead of 5 and a constant rate, so 2 CPU cores train it in minutes."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    base.resnet_model(config, g_channels=(64, 64, 64), d_channels=(64, 64, 64),
                      d_down=(True, True, False))
    config.model.latent_dim = 64
    config.loss.name = "hinge"
    base.adam(config.optim.g, 2e-4, 0.0, 0.9)
    base.adam(config.optim.d, 2e-4, 0.0, 0.9)
    config.train.batch_size = 64
    config.train.n_critic = 2        # the CIFAR recipe uses 5; 2 keeps CPU runs short
    config.train.num_steps = 2000
    config.ema.decay = 0.999
    config.ema.start_step = 200
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 1000
    return config
