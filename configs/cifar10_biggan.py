"""Class-conditional BigGAN on CIFAR-10, as BigGAN-PyTorch's CIFAR script (launch_cifar_ema.sh):
G and D 256 channels (ch 64 x 4), batch 50, 4 D steps per G step, Adam(2e-4, 0, 0.999) for both,
hinge loss, spectral norm in G and D, N(0, 0.02) init of G and D, EMA 0.9999 from step 1000, no attention, no orthogonal
regularisation; plus BigGAN's shared class embedding (128) and hierarchical latent (z 128 = 4 x
32), which the ImageNet models use. Batch 50 divides over 1, 2, 5 or 10 devices; on 8 use
--config.train.batch_size=48 (or 56)."""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    config.data.name = "tfds:cifar10:train"
    config.data.resolution = 32
    config.data.channels = 3
    base.resnet_model(config, g_channels=(256,) * 4, d_channels=(256,) * 4,
                      d_down=(True, True, False, False))
    m = config.model
    m.num_classes = 10
    m.latent_dim = 128
    m.shared_dim = 128
    m.hierarchical = True
    m.g_spectral_norm = True
    m.weight_init = "N02"            # launch_cifar_ema.sh: --G_init N02 --D_init N02
    config.loss.name = "hinge"
    base.adam(config.optim.g, 2e-4, 0.0, 0.999)
    base.adam(config.optim.d, 2e-4, 0.0, 0.999)
    config.train.batch_size = 50
    config.train.n_critic = 4
    config.train.num_steps = 100000
    config.train.log_every_steps = 200
    config.train.sample_every_steps = 2000
    config.ema.decay = 0.9999
    config.ema.start_step = 1000
    config.checkpoint.every_steps = 5000
    config.eval.extractor = "inception"
    config.eval.every_steps = 10000
    config.eval.num_samples = 10000
    return config
