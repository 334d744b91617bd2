"""StyleGAN2-ADA at 256x256 from a folder (e.g. an FFHQ subset of 1k/2k/5k/10k images, as the ADA
paper's limited-data experiments): `ffhq256_stylegan2` (NVlabs' `--cfg=paper256`) with its
`--aug=ada` defaults, the bgc pipeline with target 0.6 (stylegan2-ada-pytorch train.py), p
adjusted every 4 steps at a speed of 500 kimg per unit (training/training_loop.py), and path
length regularisation weight 2 every 4 steps (training/loss.py; only `--cfg=cifar` disables it).

Set the folder on the command line: --config.data.name=folder:/data/ffhq256_2k
"""

from gan_jax.configs import ffhq256_stylegan2


def get_config():
    config = ffhq256_stylegan2.get_config()
    a = config.augment
    a.kind = "ada"
    a.p = 0.0
    a.ada_target = 0.6
    a.ada_interval = 4
    a.ada_kimg = 500.0
    config.loss.pl_weight = 2.0
    config.loss.pl_every = 4
    config.loss.pl_decay = 0.01
    config.loss.pl_batch_shrink = 2
    return config
