"""DCGAN on MNIST (TFDS, 28x28x1): needs `pip install .[tfds]` and a prepared `mnist`."""

from gan_jax.configs import digits_dcgan


def get_config():
    config = digits_dcgan.get_config()
    config.data.name = "tfds:mnist:train"
    config.data.resolution = 28
    config.model.width = 64
    config.model.latent_dim = 100
    config.train.num_steps = 20000
    config.ema.start_step = 1000
    config.checkpoint.every_steps = 2000
    config.eval.every_steps = 2000  # FID etc. in the space of a classifier trained on MNIST (auto)
    config.eval.num_samples = 10000
    config.eval.num_real = 10000  # a fixed 10k of the 60k training images
    return config
