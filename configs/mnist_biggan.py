"""Class-conditional BigGAN-style ResNet on MNIST (TFDS, 28x28: G from 7x7, two up-blocks):
cifar10_biggan's training recipe (hinge, Adam(2e-4, 0, 0.999), EMA 0.999 from step 1000) with
n_critic 2 and batch 64."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:mnist"
    config.data.resolution = 28
    config.data.channels = 1
    base.resnet_model(config, g_channels=(256, 256, 256), d_channels=(128,) * 4,
                      d_down=(True, True, False, False))
    m = config.model
    m.num_classes = 10
    m.latent_dim = 96                # 3 chunks of 32
    m.shared_dim = 64
    m.hierarchical = True
    m.g_spectral_norm = True
    config.loss.name = "hinge"
    base.adam(config.optim.g, 2e-4, 0.0, 0.999)
    base.adam(config.optim.d, 2e-4, 0.0, 0.999)
    config.train.batch_size = 64
    config.train.n_critic = 2
    config.train.num_steps = 20000
    config.train.log_every_steps = 200
    config.train.sample_every_steps = 2000
    config.ema.decay = 0.999
    config.ema.start_step = 1000
    config.checkpoint.every_steps = 2000
    config.eval.every_steps = 2000
    config.eval.num_samples = 10000
    config.eval.num_real = 10000
    return config
