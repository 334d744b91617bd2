"""StyleGAN2-ADA for a folder of a few thousand images at 64x64 (a painter's works, a product
catalogue): NVlabs' `--cfg=auto` at 64 px on one GPU (stylegan2-ada-pytorch train.py: batch
min(4096 // 64, 32) = 32, minibatch-stddev group 4, channel base 0.5 * 32768, 2 mapping layers,
Adam lr 0.0025 betas (0, 0.99), R1 gamma 0.0002 * 64^2 / 32 = 0.0256 every 16 steps, G EMA
half-life 32 * 10 / 32 = 10 kimg) with `--aug=ada` (bgc, target 0.6) and path length weight 2.
Deviations: no EMA ramp-up (auto: the half-life is min(10 kimg, 0.05 * images seen)), no
fp16 layers.

Set the folder on the command line: --config.data.name=folder:/data/my_images
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "folder:/path/to/images"  # placeholder: every image under this folder
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
    config.loss.r1_weight = 0.0002 * 64 ** 2 / 32
    config.loss.r1_every = 16
    config.loss.r1_mode = "separate"
    config.loss.pl_weight = 2.0
    config.loss.pl_every = 4
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    base.lazy_adam(config.optim.d, 0.0025, 0.0, 0.99, 16)
    a = config.augment
    a.kind = "ada"
    a.ada_target = 0.6
    a.ada_interval = 4
    a.ada_kimg = 500.0
    config.train.batch_size = 32
    config.train.num_steps = 781_250             # 25,000 kimg at batch 32 (train.py's default)
    config.train.log_every_steps = 512  # a multiple of loss.r1_every: the logged r1 is real
    config.train.sample_every_steps = 5000
    config.ema.decay = 0.5 ** (32 / 10_000)      # half-life 10 kimg
    config.ema.start_step = 0
    config.checkpoint.every_steps = 5000
    config.eval.extractor = "inception"  # a folder has no labels for the classifier extractor
    config.eval.every_steps = 25000
    config.eval.num_samples = 50000
    return config
