"""The augmentation experiment's conditional GAN: a small BigGAN-style ResNet (conditional
BatchNorm from a shared class embedding, hierarchical latent, projection D, spectral norm in G
and D, hinge loss, EMA generator scaled to the run) at 16x16, sized so 18 runs fit in the
experiment's hour.
`data.name`, `data.train_fraction`, `data.subset_seed` and `train.seed` are set by augment.py."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "digits:train"
    config.data.resolution = 16
    config.data.channels = 1
    base.resnet_model(config, g_channels=(32, 32, 32), d_channels=(32, 32, 32),
                      d_down=(True, True, False))
    m = config.model
    m.num_classes = 10
    m.latent_dim = 30                # 3 chunks of 10: the input and each of the 2 G blocks
    m.shared_dim = 16
    m.hierarchical = True
    m.attention_resolution = 0
    m.g_spectral_norm = True
    config.loss.name = "hinge"
    base.adam(config.optim.g, 2e-4, 0.0, 0.9)
    base.adam(config.optim.d, 2e-4, 0.0, 0.9)
    config.train.batch_size = 32
    config.train.n_critic = 1
    config.train.num_steps = 1000
    config.train.log_every_steps = 100
    config.train.sample_every_steps = 0
    # BigGAN-PyTorch's EMA (decay 0.9999, a half-life of 6,900 iterations, started at iteration
    # 20,000 by its launch scripts' --ema_start, in runs of 100k+ iterations) scaled to these
    # 1,000 steps: decay 0.99 (half-life 69 steps) from step 200. 0.999 from 200, used before, still weighed the step-200 generator by
    # 0.999^800 = 45 % at step 1,000: its samples were mostly that early generator's.
    config.ema.decay = 0.99
    config.ema.start_step = 200
    config.checkpoint.every_steps = 500
    config.checkpoint.keep = 1
    config.eval.every_steps = 0
    return config
