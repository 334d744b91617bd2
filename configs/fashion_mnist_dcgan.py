"""DCGAN on Fashion-MNIST read offline from Debian's `dataset-fashion-mnist` (28x28x1): the MNIST
recipe (configs/mnist_dcgan.py) on another data set."""

from gan_jax.configs import mnist_dcgan


def get_config():
    config = mnist_dcgan.get_config()
    config.data.name = "fashion_mnist:train"
    return config
