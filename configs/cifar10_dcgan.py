"""DCGAN on CIFAR-10 (TFDS, 32x32x3) with Radford et al. 2016's training recipe (Sec. 4: batch 128,
Adam(2e-4, b1 0.5), z 100); EMA generator (not in the paper)."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:cifar10:train"
    config.data.resolution = 32
    config.data.channels = 3
    config.model.name = "dcgan"
    config.model.latent_dim = 100
    config.model.width = 64
    config.loss.name = "non_saturating"
    base.adam(config.optim.g, 2e-4, 0.5, 0.999)
    base.adam(config.optim.d, 2e-4, 0.5, 0.999)
    config.train.batch_size = 128
    config.train.num_steps = 100000
    config.train.log_every_steps = 200
    config.train.sample_every_steps = 2000
    config.ema.decay = 0.999
    config.ema.start_step = 5000
    config.checkpoint.every_steps = 5000
    # Standard FID (InceptionV3 pool3, pytorch-fid weights; README: "Evaluation") on 10k samples
    # against the 50k training images; the best checkpoint by it is kept in WORKDIR/best/.
    config.eval.extractor = "inception"
    config.eval.every_steps = 10000
    config.eval.num_samples = 10000
    return config
