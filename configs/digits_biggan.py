"""Class-conditional BigGAN-style ResNet on the built-in digits (labels 0-9) at 16x16: conditional
BatchNorm in G fed by a shared class embedding and a hierarchical latent, projection
discriminator, self-attention at 8x8, spectral norm in G and D, orthogonal regularisation
(beta 1e-4), hinge loss, EMA generator. `python -m gan_jax.sample --per_class=8` draws one row per
digit."""

from gan_jax.configs import digits_dcgan, digits_sngan


def get_config():
    config = digits_dcgan.get_config()
    digits_sngan.resnet_model(config, g_channels=(64, 64, 64), d_channels=(64, 64, 64),
                              d_down=(True, True, False))
    m = config.model
    m.num_classes = 10
    m.latent_dim = 60                # 3 chunks of 20: the input and each of the 2 G blocks
    m.shared_dim = 32
    m.hierarchical = True
    m.attention_resolution = 8
    m.g_spectral_norm = True
    digits_sngan.sngan_optimizers(config, n_critic=2)
    config.loss.ortho_weight = 1e-4
    config.train.num_steps = 2000
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 1000
    return config
