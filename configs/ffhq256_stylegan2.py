"""StyleGAN2 at 256x256 from a folder of images (e.g. FFHQ downscaled to 256 px), with NVlabs'
`--cfg=paper256` (the 256 px setting of the ADA paper): 8 mapping layers, channel_base 16384
(64 channels at 256 px ... 512 at 32 px and below), minibatch stddev groups of 8, batch 64, Adam lr
0.0025, R1 gamma 1 every 16 steps, G EMA half-life 20 kimg, style mixing 0.9, path length
regularisation weight 2 every 4 steps (NVlabs' default; training/loss.py).

Set the folder on the command line: --config.data.name=folder:/data/ffhq256
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "folder:/path/to/images"  # placeholder: every image under this folder
    config.data.resolution = 256
    config.data.channels = 3
    base.stylegan2_section(config)
    config.model.latent_dim = 512
    s = config.stylegan2
    s.w_dim = 512
    s.mapping_layers = 8
    s.channel_base = 16384
    s.channel_max = 512
    s.d_architecture = "resnet"
    s.mbstd_group_size = 8
    s.style_mixing_prob = 0.9
    config.loss.name = "non_saturating"
    config.loss.r1_weight = 1.0
    config.loss.r1_every = 16
    config.loss.r1_mode = "separate"
    config.loss.pl_weight = 2.0
    config.loss.pl_every = 4
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    base.lazy_adam(config.optim.d, 0.0025, 0.0, 0.99, 16)
    config.train.batch_size = 64
    config.train.num_steps = 390_625             # 25,000 kimg at batch 64
    config.train.log_every_steps = 512  # a multiple of loss.r1_every: the logged r1 is real
    config.train.sample_every_steps = 5000
    config.ema.decay = 0.5 ** (64 / 20_000)      # half-life 20 kimg
    config.ema.start_step = 0
    config.checkpoint.every_steps = 5000
    # A folder has no labels: the classifier extractor cannot be trained on it.
    config.eval.extractor = "inception"
    config.eval.every_steps = 25000
    config.eval.num_samples = 50000
    return config
