"""pix2pix edges -> Fashion-MNIST at 32x32, offline (Debian's `dataset-fashion-mnist`), sized for
a few minutes on 2 CPU cores.

A is `data.image_pairs.sobel_edges` of the real image (3x3 Sobel magnitude > 0.5 on [0, 1]:
black edges on white), B the image (all classes). The published settings of
configs/facades_pix2pix.py (junyanz/pytorch-CycleGAN-and-pix2pix models/pix2pix_model.py,
options/) scaled to 32 px:
* U-Net with 5 downs (32 -> 1x1, the reference's four outer levels and the innermost; no dropout
  level: the reference's dropout sits in the 8ngf levels between them, which 5 downs do not have).
* PatchGAN with n_layers 2: 34x34 receptive field (n_layers 3 sees 70x70, more than the image);
  32 px input -> 6x6 logits.
* No resize jitter: the edges are drawn at 32 px, so a resize to 36 would blur them; the random
  horizontal flip stays (same flip on A and B).
* batch 16 (reference: 1) and fewer steps, so batch norm sees a real batch.
"""

from gan_jax.configs import base

STEPS = 2000  # 1000 constant + 1000 linear decay, as the reference's 100 + 100 epochs


def get_config():
    config = base.get_config()
    d, m = config.data, config.model
    d.dataset = "edges2fashion"
    d.resolution = 32
    d.channels = 1
    d.load_size = 0
    d.test_split = "test"
    m.name = "pix2pix"
    m.generator = "unet_32"
    m.discriminator = "n_layers"
    m.n_layers = 2
    m.norm = "batch"
    m.ngf = 32
    m.ndf = 32
    m.dropout = True
    m.paper_test_time = True
    config.loss.name = "non_saturating"  # the reference's gan_mode 'vanilla': BCE with logits
    config.loss.l1_weight = 100.0
    for c in (config.optim.g, config.optim.d):
        base.adam(c, 2e-4, 0.5, 0.999)
        c.schedule = "constant_linear"
        c.constant_steps = STEPS // 2
        c.decay_steps = STEPS // 2
    config.ema.decay = 0.0  # the reference has no EMA generator
    t = config.train
    t.batch_size = 16
    t.num_steps = STEPS
    t.log_every_steps = 50
    t.sample_every_steps = 500
    config.checkpoint.every_steps = 500
    config.sample.num = 16
    config.eval.every_steps = 0  # image-to-image metrics: `python -m gan_jax.evaluate`
    return config
