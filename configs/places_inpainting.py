"""DeepFill v2 on Places365-style folders at 256x256: configs/celebahq_inpainting.py with
open-mmlab/mmagic `configs/deepfillv2/deepfillv2_8xb2_places-256x256.py`'s run length
(max_iters 1,000,003); the rest of that config equals the CelebA one.

    --config.data.name=folder:/data/places/train --config.inpaint.test_data=folder:/data/places/val

Published (mmagic configs/deepfillv2/README.md, Places365-val, free-form): L1 8.635, PSNR 22.398,
SSIM 0.815.
"""

from gan_jax.configs import celebahq_inpainting

STEPS = 1_000_003


def get_config():
    config = celebahq_inpainting.get_config()
    config.data.name = "folder:/path/to/places/train"  # placeholder
    config.inpaint.test_data = "folder:/path/to/places/val"  # placeholder
    config.train.num_steps = STEPS
    return config
