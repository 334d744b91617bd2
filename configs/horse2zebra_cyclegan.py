"""CycleGAN horse <-> zebra with the published settings (Zhu et al. 2017; needs a GPU and the
TFDS download `cycle_gan/horse2zebra`), as junyanz/pytorch-CycleGAN-and-pix2pix
`models/cycle_gan_model.py` and `options/{base,train}_options.py` with `--model cycle_gan`:
resnet_9blocks G (ngf 64), 70x70 PatchGAN D (`basic`, ndf 64), instance norm, no dropout, LSGAN,
lambda_A = lambda_B = 10, lambda_identity 0.5, pool_size 50, batch 1, Adam(2e-4, 0.5, 0.999) for
n_epochs 100 at the full rate then n_epochs_decay 100 linearly to 0; train images loaded at 286
px, randomly cropped to 256 and flipped horizontally (`data/base_dataset.py` get_transform,
preprocess resize_and_crop, load_size 286, crop_size 256, no_flip False).

An epoch is max(|trainA|, |trainB|) iterations at batch 1 (the reference's UnalignedDataset
length): 1,334 (trainA 1,067 horses, trainB 1,334 zebras, the TFDS catalog counts). The reference
steps its schedule once per epoch; ours per update (the same line, sampled finer).
"""

from gan_jax.configs import base

EPOCH = 1334  # iterations per epoch: max(|trainA|, |trainB|)
EPOCHS, DECAY_EPOCHS = 100, 100


def get_config(dataset: str = "tfds:cycle_gan/horse2zebra", epoch: int = EPOCH):
    config = base.get_config()
    d, m = config.data, config.model
    d.dataset = dataset
    d.resolution = 256
    d.channels = 3
    d.load_size = 286                # randomly cropped to 256
    d.flip = True
    d.test_split = "test"
    m.name = "cyclegan"
    m.generator = "resnet_9blocks"  # 9 blocks at 256 px (6 at <= 128 px)
    m.discriminator = "basic"
    m.norm = "instance"
    m.ngf = 64
    m.ndf = 64
    c = config.loss
    c.cycle_weight = 10.0            # lambda_A = lambda_B
    c.identity_weight = 0.5          # lambda_identity: the identity loss weighs 0.5 * 10
    c.pool_size = 50
    for opt in (config.optim.g, config.optim.d):
        base.adam(opt, 2e-4, 0.5, 0.999)
        opt.schedule = "constant_linear"
        opt.constant_steps = EPOCHS * epoch
        opt.decay_steps = DECAY_EPOCHS * epoch
    config.ema.decay = 0.0           # the reference has no EMA generator
    t = config.train
    t.batch_size = 1
    t.num_steps = (EPOCHS + DECAY_EPOCHS) * epoch
    t.log_every_steps = 100
    t.sample_every_steps = 5 * epoch
    config.checkpoint.every_steps = 5 * epoch  # the reference's save_epoch_freq 5
    config.sample.num = 16
    config.eval.every_steps = 0      # image-to-image metrics: `python -m gan_jax.evaluate`
    return config
