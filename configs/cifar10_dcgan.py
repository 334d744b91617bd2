"""DCGAN on CIFAR-10 (TFDS, 32x32x3), Radford et al. 2016 hyper-parameters."""

from gan_jax.configs import digits_dcgan


def get_config():
    config = digits_dcgan.get_config()
    config.data.name = "tfds:cifar10:train"
    config.data.resolution = 32
    config.data.channels = 3
    config.model.latent_dim = 100
    config.model.width = 64
    config.train.num_steps = 100000
    config.train.log_every_steps = 200
    config.train.sample_every_steps = 2000
    config.ema.start_step = 5000
    config.checkpoint.every_steps = 5000
    # Standard FID (InceptionV3 pool3, pytorch-fid weights; README: "Evaluation") on 10k samples
    # against the 50k training images; the best checkpoint by it is kept in WORKDIR/best/.
    config.eval.extractor = "inception"
    config.eval.every_steps = 10000
    config.eval.num_samples = 10000
    return config
