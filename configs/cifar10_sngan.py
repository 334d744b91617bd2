"""SNGAN on CIFAR-10 (Miyato et al. 2018, ResNet, hinge loss; Table 2: FID 21.7, IS 8.22): G
256 channels (3 up-blocks from 4x4), D 128 channels (optimized block, one more down-block, two
plain blocks, ReLU, global sum pool, SN linear), spectral norm in D, z 128, batch 64, n_dis 5,
Adam(2e-4, 0, 0.9), 50,000 G updates (pfnet-research/sngan_projection, sn_cifar10_unconditional).
Parameter counts equal torch-mimicry's SNGAN-32 (tests/test_resnet.py)."""

from gan_jax.configs import digits_dcgan, digits_sngan


def get_config():
    config = digits_dcgan.get_config()
    config.data.name = "tfds:cifar10:train"
    config.data.resolution = 32
    config.data.channels = 3
    digits_sngan.resnet_model(config, g_channels=(256,) * 4, d_channels=(128,) * 4,
                              d_down=(True, True, False, False))
    config.model.latent_dim = 128
    digits_sngan.sngan_optimizers(config)
    config.ema.decay = 0.0           # the published run samples from G itself
    config.train.num_steps = 50000
    config.train.log_every_steps = 200
    config.train.sample_every_steps = 2000
    config.checkpoint.every_steps = 5000
    config.eval.extractor = "inception"
    config.eval.every_steps = 10000
    config.eval.num_samples = 10000
    return config
