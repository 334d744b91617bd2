"""Progressive growing of GANs (Karras et al. 2018) on CelebA at 64x64 (tfds:celeb_a), 4 -> 64 px.

The paper's networks (fmap_base 8192, fmap_max 512: 512 channels up to 32 px, 256 at 64 px; latent
512), loss (WGAN-GP, lambda 10, drift epsilon 0.001) and optimizer (Adam(1e-3, 0.0, 0.99), reset
at every level change as tkarras/progressive_growing_of_gans' reset_opt_for_new_lod; EMA 0.999 of
G). Each level trains 600k images and fades in over 600k (the paper's schedule), here in steps of
batch 64: 9,375 steps each. The paper lowers the batch at high resolutions to fit memory; at 64 px
one batch size fits. See experiments/celeba_progressive/README.md.
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:celeb_a"
    config.data.resolution = 64
    config.data.channels = 3
    base.progressive_section(config)
    config.model.latent_dim = 512
    p = config.progressive
    p.fmap_base = 8192
    p.fmap_max = 512
    p.stable_steps = 9375        # 600k images at batch 64
    p.fade_steps = 9375
    config.loss.name = "wgan"
    config.loss.gp_weight = 10.0
    base.adam(config.optim.g, 1e-3, 0.0, 0.99)
    base.adam(config.optim.d, 1e-3, 0.0, 0.99)
    config.train.batch_size = 64
    # 5 levels (4..64 px): 9,375 + 4 * (9,375 + 9,375) steps, then 64 px on to 12M images.
    config.train.num_steps = 187500
    config.train.log_every_steps = 500
    config.train.sample_every_steps = 5000
    config.checkpoint.every_steps = 5000
    config.ema.decay = 0.999
    config.ema.start_step = 0
    config.eval.extractor = "inception"
    config.eval.every_steps = 25000
    config.eval.num_samples = 50000
    config.eval.metrics = "fid,kid"
    config.eval.best_metric = "fid"
    return config
