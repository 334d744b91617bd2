"""CycleGAN sneakers (A, Fashion-MNIST class 7) <-> ankle boots (B, class 9) at 32x32, offline
(Debian's `dataset-fashion-mnist`), sized for minutes on 2 CPU cores.

A and B come from disjoint halves of the train split (`fashion_sneakers2boots`,
gan_jax/data/image_pairs.py), so no pair exists. The published settings of
configs/horse2zebra_cyclegan.py (LSGAN, lambda 10 each way, identity 0.5 * lambda, pool 50,
Adam(2e-4, 0.5), constant then linear decay to 0, instance norm, no dropout) scaled to 32 px:
* resnet_6blocks G (the reference's choice at <= 128 px), ngf 16 (reference 64): the six blocks
  run at 8x8 with 64 channels, a sixteenth of the reference's cost per pixel.
* PatchGAN with n_layers 2, ndf 16: a 34x34 receptive field, about the whole 32 px image (n_layers
  3 sees 70x70, more than the image, and leaves 2x2 logits); 32 px input -> 6x6 logits.
* No resize jitter and no flip (the reference loads at 286, crops 256 and flips): Fashion-MNIST's
  shoes all face one way, so a flipped training image is unlike any test image (half the training
  targets would lie outside the test distribution), and the 32 px images are small enough that a
  resize to 36 blurs their detail (as for configs/edges2fashion_pix2pix.py).
* batch 4 (reference: 1), so a CPU step sees more than one image per domain. Instance norm keeps
  every image's forward pass independent of the others and the losses are means, so the
  reference's learning rate is kept (not tuned here).
* 2,000 steps (1,000 constant + 1,000 linear decay, the reference's 100 + 100 epoch split; about
  8 min on 2 quiet CPU cores at 4 steps/s), not 4,000 (17 min, more than a newcomer's
  "minutes"): a 500-step run already turns 96 % of the test sneakers into what the classifier
  calls ankle boots and 95 % of the boots into sneakers (experiments/fashion_cyclegan/README.md).
"""

from gan_jax.configs import base

STEPS = 2000  # 1000 constant + 1000 linear decay, as the reference's 100 + 100 epochs


def get_config():
    config = base.get_config()
    d, m = config.data, config.model
    d.dataset = "fashion_sneakers2boots"
    d.resolution = 32
    d.channels = 1
    d.load_size = 0
    d.flip = False
    d.test_split = "test"
    m.name = "cyclegan"
    m.generator = "resnet_6blocks"
    m.discriminator = "n_layers"
    m.n_layers = 2
    m.norm = "instance"
    m.ngf = 16
    m.ndf = 16
    c = config.loss
    c.cycle_weight = 10.0
    c.identity_weight = 0.5
    c.pool_size = 50
    for opt in (config.optim.g, config.optim.d):
        base.adam(opt, 2e-4, 0.5, 0.999)
        opt.schedule = "constant_linear"
        opt.constant_steps = STEPS // 2
        opt.decay_steps = STEPS // 2
    config.ema.decay = 0.0  # the reference has no EMA generator
    t = config.train
    t.batch_size = 4
    t.num_steps = STEPS
    t.log_every_steps = 50
    t.sample_every_steps = 500
    config.checkpoint.every_steps = 500
    config.sample.num = 16
    config.eval.every_steps = 0  # image-to-image metrics: `python -m gan_jax.evaluate`
    return config
