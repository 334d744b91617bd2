"""pix2pix on CMP Facades, the published settings (Isola et al. 2017; junyanz/
pytorch-CycleGAN-and-pix2pix scripts/train_pix2pix.sh, models/pix2pix_model.py, options/):

    python -m gan_jax.train --config=configs/facades_pix2pix.py --workdir=runs/facades \
        --config.data.dataset=pairs:/path/to/facades

The folder is the reference's `datasets/download_pix2pix_dataset.sh facades` layout: train/ and
test/ of side-by-side A|B images (A: photo, B: labels); `--direction BtoA` as the reference's
script, so G maps labels -> photo (data.direction). 400 train images, batch 1:
200 epochs = 80,000 steps, 100 epochs at lr 2e-4 then 100 of linear decay to 0. Load 286, random
crop 256 and flip; U-Net 256, 70x70 PatchGAN, batch norm, dropout, lambda_L1 100. Needs a GPU.
"""

from gan_jax.configs import base

TRAIN_IMAGES = 400
EPOCHS, DECAY_EPOCHS = 100, 100


def get_config():
    config = base.get_config()
    d, m = config.data, config.model
    d.dataset = "pairs:datasets/facades"
    d.direction = "BtoA"
    d.resolution = 256  # crop_size
    d.load_size = 286
    d.channels = 3
    d.test_split = "test"
    m.name = "pix2pix"
    m.generator = "unet_256"
    m.discriminator = "basic"
    m.n_layers = 3
    m.norm = "batch"
    m.ngf = m.ndf = 64
    m.dropout = True
    m.paper_test_time = True
    config.loss.name = "non_saturating"  # gan_mode 'vanilla'
    config.loss.l1_weight = 100.0
    for c in (config.optim.g, config.optim.d):
        base.adam(c, 2e-4, 0.5, 0.999)
        c.schedule = "constant_linear"
        c.constant_steps = EPOCHS * TRAIN_IMAGES
        c.decay_steps = DECAY_EPOCHS * TRAIN_IMAGES
    config.ema.decay = 0.0
    t = config.train
    t.batch_size = 1
    t.num_steps = (EPOCHS + DECAY_EPOCHS) * TRAIN_IMAGES
    t.log_every_steps = 100
    t.sample_every_steps = 4000
    config.checkpoint.every_steps = 4000
    config.sample.num = 8
    config.eval.every_steps = 0
    return config
