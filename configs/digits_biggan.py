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
    # BigGAN-PyTorch's EMA (0.9999: a half-life of 6,931 iterations, 7 % of its 100k) scaled to
    # these 2,000 steps: 0.995, a half-life of 138 steps. 0.999 from step 200, used before, left the
    # step-200 generator 0.999^1800 = 16.5 % of the final EMA generator.
    config.ema.decay = 0.995
    config.ema.start_step = 200
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 1000
    return config
