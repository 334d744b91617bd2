"""StyleGAN2-ADA on 500 of the digits (about 50 per class) at 16x16: the small-data demonstration
of experiments/small_data_ada/, sized for 2 shared CPU cores.

NVlabs' `--cfg=auto` rules (stylegan2-ada-pytorch train.py) at 16 px on one GPU: batch
min(4096 // 16, 32) = 32, minibatch-stddev group 4, R1 gamma 0.0002 * 16^2 / 32 = 0.0016 every 16
steps, 2 mapping layers, Adam lr 0.0025 betas (0, 0.99) scaled for lazy regularisation (G 4, D
16; training/training_loop.py), G EMA half-life 32 * 10 / 32 = 10 kimg, path length weight 2
(training/loss.py), `--aug=ada` (bgc, target 0.6, adjusted every 4 steps). CPU-sized deviations:
the widths of configs/digits_stylegan2.py (z = w = 64, channel_base 1024, channel_max 64; auto:
512, 16384, 512), no EMA ramp-up (auto: 0.05), and ada_kimg 20 (500): the demonstration trains
for tens of kimg, far too short for p to move at NVlabs' speed (at most 0.1 in 50 kimg).
Without ADA: --config.augment.kind=diffaugment (the base's empty policy: no augmentation).
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    config.data.train_fraction = 500 / 1797  # 500 of the 1,797 digits, per class
    config.data.subset_seed = 0
    base.stylegan2_section(config)
    config.model.latent_dim = 64
    s = config.stylegan2
    s.w_dim = 64
    s.mapping_layers = 2
    s.channel_base = 1024
    s.channel_max = 64
    s.d_architecture = "resnet"
    s.mbstd_group_size = 4
    s.style_mixing_prob = 0.9
    config.loss.name = "non_saturating"
    config.loss.r1_weight = 0.0002 * 16 ** 2 / 32
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
    a.ada_kimg = 20.0
    config.train.batch_size = 32
    config.train.num_steps = 2000
    config.train.log_every_steps = 16  # a multiple of r1_every and pl_every
    config.train.sample_every_steps = 500
    config.ema.decay = 0.5 ** (32 / 10_000)      # half-life 10 kimg
    config.ema.start_step = 0
    config.checkpoint.every_steps = 100
    config.checkpoint.keep = 30
    config.eval.every_steps = 0
    config.eval.num_samples = 2000
    return config
