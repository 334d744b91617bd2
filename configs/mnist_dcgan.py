"""DCGAN on MNIST (TFDS, 28x28x1): needs `pip install .[tfds]` and a prepared `mnist`.

Radford et al.'s Adam(2e-4, 0.5); batch 64 and 20,000 steps as Lucic et al. 2018's MNIST budget
(about 21 epochs); EMA generator."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:mnist:train"
    config.data.resolution = 28
    config.data.channels = 1
    config.model.name = "dcgan"
    config.model.width = 64
    config.model.latent_dim = 100
    config.loss.name = "non_saturating"
    base.adam(config.optim.g, 2e-4, 0.5, 0.999)
    base.adam(config.optim.d, 2e-4, 0.5, 0.999)
    config.train.batch_size = 64
    config.train.num_steps = 20000
    config.ema.decay = 0.999
    config.ema.start_step = 1000
    config.checkpoint.every_steps = 2000
    config.eval.every_steps = 2000  # FID etc. in the space of a classifier trained on MNIST (auto)
    config.eval.num_samples = 10000
    config.eval.num_real = 10000  # a fixed 10k of the 60k training images
    return config
