"""StyleGAN2-ADA at 512x512 from a folder of one AFHQ class (cat, dog or wild, about 5k images
each), with NVlabs' `--cfg=paper512` (the ADA paper's AFHQ setting; stylegan2-ada-pytorch train.py
cfg_specs): 8 mapping layers, channel_base 32768 (fmaps 1: 64 channels at 512 px ... 512 at 64 px
and below), minibatch stddev groups of 8, batch 64, Adam lr 0.0025 betas (0, 0.99) scaled for lazy
regularisation (G 4, D 16), R1 gamma 0.5 every 16 steps, G EMA half-life 20 kimg, no EMA ramp-up,
25,000 kimg; `--aug=ada` (bgc, target 0.6, every 4 steps, 500 kimg), path length weight 2.
Deviations: NVlabs' AFHQ runs use `--mirror=1` (x-flipped copies of the data), which noise-to-image
data here lacks; no fp16 layers.

Set the folder on the command line: --config.data.name=folder:/data/afhq/train/cat
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "folder:/path/to/afhq/train/cat"  # placeholder: cat, dog or wild
    config.data.resolution = 512
    config.data.channels = 3
    base.stylegan2_section(config)
    config.model.latent_dim = 512
    s = config.stylegan2
    s.w_dim = 512
    s.mapping_layers = 8
    s.channel_base = 32768
    s.channel_max = 512
    s.d_architecture = "resnet"
    s.mbstd_group_size = 8
    s.style_mixing_prob = 0.9
    config.loss.name = "non_saturating"
    config.loss.r1_weight = 0.5
    config.loss.r1_every = 16
    config.loss.r1_mode = "separate"
    config.loss.pl_weight = 2.0
    config.loss.pl_every = 4
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    base.lazy_adam(config.optim.d, 0.0025, 0.0, 0.99, 16)
    a = config.augment
    a.kind = "ada"
    a.p = 0.0
    a.ada_target = 0.6
    a.ada_interval = 4
    a.ada_kimg = 500.0
    config.train.batch_size = 64
    config.train.num_steps = 390_625             # 25,000 kimg at batch 64
    config.train.log_every_steps = 512  # a multiple of loss.r1_every: the logged r1 is real
    config.train.sample_every_steps = 5000
    config.ema.decay = 0.5 ** (64 / 20_000)      # half-life 20 kimg
    config.ema.start_step = 0
    config.checkpoint.every_steps = 5000
    config.eval.extractor = "inception"  # a folder has no labels for the classifier extractor
    config.eval.every_steps = 25000
    config.eval.num_samples = 50000
    return config
