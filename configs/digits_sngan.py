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
    # BigGAN-PyTorch's EMA (0.9999: a half-life of 6,931 iterations, 7 % of its 100k) scaled to
    # these 2,000 steps: 0.995, a half-life of 138 steps. 0.999 from step 200, used before, left the
    # step-200 generator 0.999^1800 = 16.5 % of the final EMA generator.
    config.ema.decay = 0.995
    config.ema.start_step = 200
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 1000
    return config
