"""StyleGAN2 on CIFAR-10 (32x32x3), NVlabs stylegan2-ada-pytorch's `--cfg=cifar` without ADA.

As their train.py: 512-d z and w, 2 mapping layers, channel_base 32768 (512 channels at every
resolution), D without residual skips ('orig'), minibatch stddev groups of 32, no style mixing,
R1 gamma 0.01 every 16 steps as its own D update, Adam lr 0.0025 with betas (0, 0.99) (adjusted
for lazy regularisation), batch 64, 100,000 kimg, G EMA half-life 500 kimg (their 5% ramp-up is
approximated by ema.start_step). Recipe and published numbers: experiments/cifar10_stylegan2/.
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:cifar10:train"
    config.data.resolution = 32
    config.data.channels = 3
    base.stylegan2_section(config)
    config.model.latent_dim = 512
    s = config.stylegan2
    s.w_dim = 512
    s.mapping_layers = 2
    s.channel_base = 32768
    s.channel_max = 512
    s.d_architecture = "orig"
    s.mbstd_group_size = 32
    s.style_mixing_prob = 0.0
    config.loss.name = "non_saturating"
    config.loss.r1_weight = 0.01
    config.loss.r1_every = 16
    config.loss.r1_mode = "separate"
    base.lazy_adam(config.optim.g, 0.0025, 0.0, 0.99, 4)
    base.lazy_adam(config.optim.d, 0.0025, 0.0, 0.99, 16)
    config.train.batch_size = 64
    config.train.num_steps = 1_562_500           # 100,000 kimg at batch 64
    config.train.log_every_steps = 512  # a multiple of loss.r1_every: the logged r1 is real
    config.train.sample_every_steps = 10000
    config.ema.decay = 0.5 ** (64 / 500_000)     # half-life 500 kimg
    config.ema.start_step = 10000
    config.checkpoint.every_steps = 10000
    # FID50k as NVlabs (fid50k_full: 50k samples against the 50k training images), pytorch-fid's
    # InceptionV3 weights (README: "Evaluation").
    config.eval.extractor = "inception"
    config.eval.every_steps = 50000
    config.eval.num_samples = 50000
    return config
