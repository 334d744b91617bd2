"""DeepFill v2 inpainting on 32x32 Fashion-MNIST, boxes and free-form strokes, offline (Debian's
`dataset-fashion-mnist`), sized for 2 CPU cores (about an hour per arm:
experiments/fashion_inpainting).

The reference settings of open-mmlab/mmagic `configs/_base_/models/base_deepfillv2.py` (hinge
SN-PatchGAN on (image, mask) at loss weight 0.1, L1 over hole and valid pixels at 1 each per
stage, Adam(1e-4) with PyTorch's betas for G and D, one D step per G step) scaled to 32 px:
* G: the gated encoder-decoder (DeepFill v2's coarse network alone), width 16 (reference 24);
  dilations 2 and 4 (the reference's 8 and 16 would only see padding at the 8x8 bottleneck).
* D: n_layers 3 SN convs of 5x5 stride 2, ndf 32 (reference 6 layers, 64): 4x4 patch logits.
* Masks: boxes and brush strokes (stroke widths scaled from 256 px), 5-60 % of the image, so the
  evaluation's area bins 0-20, 20-40 and 40-60 % are all populated.
* batch 16 (mmagic: 8 GPUs x 2); Adam at the reference's 1e-4.
Test split (evaluate, grids): Fashion-MNIST's test images.
"""

from gan_jax.configs import base


def get_config():
    config = base.get_config()
    d, m, c = config.data, config.model, config.inpaint
    d.name = "fashion_mnist"
    d.resolution = 32
    d.channels = 1
    m.name = "inpainting"
    m.generator = "encoder_decoder"
    m.ngf = 16
    m.ndf = 32
    m.n_layers = 3
    c.mask_kinds = ("box", "free")
    c.area_range = (0.05, 0.6)
    c.dilations = (2, 4)
    c.gan_weight, c.hole_weight, c.valid_weight = 0.1, 1.0, 1.0
    c.test_data = "fashion_mnist:test"
    config.loss.name = "hinge"
    for opt in (config.optim.g, config.optim.d):
        base.adam(opt, 1e-4, 0.9, 0.999)
    config.ema.decay = 0.0  # the reference has no EMA generator
    t = config.train
    t.batch_size = 16
    t.num_steps = 3000
    t.log_every_steps = 50
    t.sample_every_steps = 500
    config.checkpoint.every_steps = 500
    config.sample.num = 16
    config.eval.every_steps = 0  # inpainting metrics: `python -m gan_jax.evaluate`
    return config
