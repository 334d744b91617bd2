"""Class-conditional BigGAN-style ResNet on the built-in digits (labels 0-9) at 16x16: conditional
BatchNorm in G fed by a shared class embedding and a hierarchical latent, projection
discriminator, self-attention at 8x8, spectral norm in G and D, orthogonal regularisation
(beta 1e-4), hinge loss, EMA generator. `python -m gan_jax.sample --per_class=8` draws one row per
digit."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    base.resnet_model(config, g_channels=(64, 64, 64), d_channels=(64, 64, 64),
                      d_down=(True, True, False))
    m = config.model
    m.num_classes = 10
    m.latent_dim = 60                # 3 chunks of 20: the input and each of the 2 G blocks
    m.shared_dim = 32
    m.hierarchical = True
    m.attention_resolution = 8
    m.g_spectral_norm = True
    config.loss.name = "hinge"
    config.loss.ortho_weight = 1e-4
    base.adam(config.optim.g, 2e-4, 0.0, 0.9)
    base.adam(config.optim.d, 2e-4, 0.0, 0.9)
    config.train.batch_size = 64
    config.train.n_critic = 2
    config.train.num_steps = 2000
    config.ema.decay = 0.999
    config.ema.start_step = 200
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 1000
    return config
