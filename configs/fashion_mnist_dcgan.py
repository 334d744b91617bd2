"""DCGAN on Fashion-MNIST read offline from Debian's `dataset-fashion-mnist` (28x28x1)."""

from gan_jax.configs import mnist_dcgan


def get_config():
    config = mnist_dcgan.get_config()
    config.data.name = "fashion_mnist:train"
    return config
