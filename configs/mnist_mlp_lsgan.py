"""MLP GAN with the least-squares loss (Mao et al. 2017) on MNIST (TFDS, 28x28x1): the MNIST
DCGAN recipe (configs/mnist_dcgan.py) with an MLP G and D without normalisation."""

from gan_jax.configs import mnist_dcgan


def get_config():
    config = mnist_dcgan.get_config()
    config.model.name = "mlp"
    config.model.hidden_dims = (512, 512)
    config.model.g_norm = "none"
    config.model.d_norm = "none"
    config.loss.name = "lsgan"
    return config
