"""SNGAN on CIFAR-10 (Miyato et al. 2018, ResNet, hinge loss; Table 2: FID 21.7, IS 8.22), as
pfnet-research/sngan_projection's configs/sn_cifar10_unconditional.yml and updater.py: G 256
channels (3 up-blocks from 4x4), D 128 channels (optimized block, one more down-block, two plain
blocks, ReLU, global sum pool, SN linear), spectral norm in D, z 128, n_dis 5 D steps on batches of
64, each G step on 128 fakes, Adam(2e-4, 0, 0.9) decayed linearly to 0 over the 50,000 G
iterations (LinearShift). Our schedules count optimizer updates, so D (5 updates per iteration)
decays over 250,000. Parameter counts equal torch-mimicry's SNGAN-32 (tests/test_resnet.py)."""

from gan_jax.configs import base

N_DIS, ITERATIONS = 5, 50_000


def get_config():
    config = base.get_config()
    config.data.name = "tfds:cifar10:train"
    config.data.resolution = 32
    config.data.channels = 3
    base.resnet_model(config, g_channels=(256,) * 4, d_channels=(128,) * 4,
                      d_down=(True, True, False, False))
    config.model.latent_dim = 128
    config.loss.name = "hinge"
    for opt, updates in ((config.optim.g, ITERATIONS), (config.optim.d, N_DIS * ITERATIONS)):
        base.adam(opt, 2e-4, 0.0, 0.9)
        opt.schedule = "linear"
        opt.decay_steps = updates
    config.ema.decay = 0.0           # the published run samples from G itself
    config.train.batch_size = 64
    config.train.g_batch_size = 128
    config.train.n_critic = N_DIS
    config.train.num_steps = ITERATIONS
    config.train.log_every_steps = 200
    config.train.sample_every_steps = 2000
    config.checkpoint.every_steps = 5000
    config.eval.extractor = "inception"
    config.eval.every_steps = 10000
    config.eval.num_samples = 10000
    return config
