"""SNGAN (Miyato et al. 2018) on the built-in 8x8 digits at 16x16: ResNet G and D, spectral norm
in D, hinge loss, Adam(2e-4, 0, 0.9) — the CIFAR recipe (configs/cifar10_sngan.py) narrowed to 64
channels and with n_critic 2 instead of 5, so 2 CPU cores train it in minutes. Model keys: see
`resnet_model`."""

from gan_jax.configs import digits_dcgan


def resnet_model(config, g_channels, d_channels, d_down):
    """Set model.name = 'resnet' and its keys on `config` (every key the ResNet models read)."""
    m = config.model
    m.name = "resnet"
    m.g_channels = g_channels        # (C0, C1, ..., Cn): G's base map, then each 2x block
    m.d_channels = d_channels        # D blocks' output channels (block 0: the optimized block)
    m.d_down = d_down                # 2x average pooling after each D block
    m.shared_dim = 0                 # > 0: BigGAN shared class embedding feeding G's cBN
    m.hierarchical = False           # BigGAN hierarchical latent: a chunk of z per G block
    m.attention_resolution = 0       # self-attention after the G/D block at this size; 0: none
    m.g_spectral_norm = False        # spectral norm in G (BigGAN: True)
    m.d_spectral_norm = True
    m.g_norm = m.d_norm = "batch"    # (DCGAN keys; the ResNet G always uses (c)BN, D none)
    return config


def sngan_optimizers(config, n_critic=5):
    config.loss.name = "hinge"
    config.train.n_critic = n_critic
    for opt in (config.optim.g, config.optim.d):
        opt.learning_rate = 2e-4
        opt.b1 = 0.0
        opt.b2 = 0.9
    return config


def get_config():
    config = digits_dcgan.get_config()
    resnet_model(config, g_channels=(64, 64, 64), d_channels=(64, 64, 64),
                 d_down=(True, True, False))
    config.model.latent_dim = 64
    sngan_optimizers(config, n_critic=2)  # the CIFAR recipe uses 5; 2 keeps CPU runs short
    config.train.num_steps = 2000
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 1000
    return config
