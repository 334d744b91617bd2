"""StyleGAN2 on CelebA at 64x64 (TFDS celeb_a, center-cropped and resized), with the settings
NVlabs' stylegan2-ada-pytorch train.py picks for a 64 px data set on 8 GPUs (`--cfg=auto`):
2 mapping layers, channel_base 16384 (256 channels at 64 px, 512 below), minibatch stddev groups
of 4, batch 64, Adam lr 0.0025, R1 gamma 0.0002 * 64**2 / 64 = 0.0128 every 16 steps, G EMA
half-life 20 kimg, style mixing 0.9, path length regularisation weight 2 every 4 steps (NVlabs'
default; training/loss.py).
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:celeb_a"
    config.data.resolution = 64
    config.data.channels = 3
    base.stylegan2_section(config)
    config.model.latent_dim = 512
    s = config.stylegan2
    s.w_dim = 512
    s.mapping_layers = 2
    s.channel_base = 16384
    s.channel_max = 512
    s.d_architecture = "resnet"
    s.mbstd_group_size = 4
    s.style_mixing_prob = 0.9
    config.loss.name = "non_saturating"
    config.loss.r1_weight = 0.0128
    config.loss.r1_every = 16
    config.loss.r1_mode = "separate"
    config.loss.pl_weight = 2.0
    config.loss.pl_every = 4
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    base.lazy_adam(config.optim.d, 0.0025, 0.0, 0.99, 16)
    config.train.batch_size = 64
    config.train.num_steps = 390_625             # 25,000 kimg at batch 64 (NVlabs' default)
    config.train.log_every_steps = 512  # a multiple of loss.r1_every: the logged r1 is real
    config.train.sample_every_steps = 5000
    config.ema.decay = 0.5 ** (64 / 20_000)      # half-life 20 kimg
    config.ema.start_step = 1000
    config.checkpoint.every_steps = 10000
    config.eval.extractor = "inception"
    config.eval.every_steps = 25000
    config.eval.num_samples = 50000
    return config
