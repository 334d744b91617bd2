"""DeepFill v2 on CelebA-HQ at 256x256 from folders of images, with the reference settings of
open-mmlab/mmagic `configs/deepfillv2/deepfillv2_8xb2_celeba-256x256.py` and
`configs/_base_/models/base_deepfillv2.py` (networks: JiahuiYu/generative_inpainting
`inpaint_model.py`).

Set the folders on the command line:
    --config.data.name=folder:/data/celebahq/train --config.inpaint.test_data=folder:/data/celebahq/val

* G: two-stage gated-conv coarse-to-fine network, width 24 (the reference's cnum 48 halved by
  the gates; mmagic channel_factor 0.75), dilations 2, 4, 8, 16; contextual attention in the
  refinement stage (see gan_jax/models/inpainting.py).
* D: SN-PatchGAN, 6 convs 5x5 stride 2, 64-128-256-256-256-256 (MultiLayerDiscriminator,
  num_convs 6, max_channels 256), on (image, mask).
* Losses: hinge, G's GAN term at 0.1; L1 over hole and valid pixels at 1.0 each, both stages.
* Adam(1e-4) for G and D with PyTorch's betas (0.9, 0.999) (mmagic; the TensorFlow reference uses
  beta1 0.5, train.py); batch 16 (8 GPUs x 2); max_iters 500,003.
* Masks: free-form strokes covering 15-65 % (mmagic's area_ratio_range (0.15, 0.65); its
  `random_irregular_mask` generator is drawn here as DeepFill v2's `brush_stroke_mask`).
  mmagic crops 384 px at random and resizes to 256; `folder:` center-crops and resizes here.
Published (mmagic configs/deepfillv2/README.md, CelebA-val, free-form): L1 5.411, PSNR 25.721,
SSIM 0.871.
"""

from gan_jax.configs import base

STEPS = 500_003


def get_config():
    config = base.get_config()
    d, m, c = config.data, config.model, config.inpaint
    d.name = "folder:/path/to/celebahq/train"  # placeholder
    d.resolution = 256
    d.channels = 3
    m.name = "inpainting"
    m.generator = "two_stage"
    m.ngf = 24
    m.ndf = 64
    m.n_layers = 6
    c.mask_kinds = ("free",)
    c.area_range = (0.15, 0.65)
    c.dilations = (2, 4, 8, 16)
    c.gan_weight, c.hole_weight, c.valid_weight = 0.1, 1.0, 1.0
    c.test_data = "folder:/path/to/celebahq/val"  # placeholder
    config.loss.name = "hinge"
    for opt in (config.optim.g, config.optim.d):
        base.adam(opt, 1e-4, 0.9, 0.999)
    config.ema.decay = 0.0  # the reference has no EMA generator
    t = config.train
    t.batch_size = 16
    t.num_steps = STEPS
    t.log_every_steps = 100
    t.sample_every_steps = 5000
    config.checkpoint.every_steps = 50_000  # the reference's CheckpointHook interval
    config.sample.num = 16
    config.eval.every_steps = 0  # inpainting metrics: `python -m gan_jax.evaluate`
    config.eval.extractor = "inception"  # a folder has no labels for the classifier
    config.eval.metrics = "fid"
    return config
