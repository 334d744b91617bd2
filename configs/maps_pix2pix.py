"""pix2pix on Google Maps aerial photo -> map, the published settings (Isola et al. 2017, Sec. 4
and appendix 6.3: 1096 training images, batch 1, 200 epochs; junyanz/pytorch-CycleGAN-and-pix2pix
models/pix2pix_model.py, options/):

    python -m gan_jax.train --config=configs/maps_pix2pix.py --workdir=runs/maps \
        --config.data.dataset=pairs:/path/to/maps

The folder is the reference's `datasets/download_pix2pix_dataset.sh maps` layout: train/ and val/
(no test/) of side-by-side A|B images, A the aerial photo, B the map; direction AtoB (photo ->
map; BtoA for map -> photo). 200 epochs = 219,200 steps, 100 at lr 2e-4 then 100 of linear decay.
Load 286, random crop 256 and flip; U-Net 256, 70x70 PatchGAN, batch norm, lambda_L1 100. Needs
a GPU.
"""

from gan_jax.configs import facades_pix2pix

TRAIN_IMAGES = 1096


def get_config():
    config = facades_pix2pix.get_config()
    d = config.data
    d.dataset = "pairs:datasets/maps"
    d.direction = "AtoB"
    d.test_split = "val"
    epochs, decay_epochs = facades_pix2pix.EPOCHS, facades_pix2pix.DECAY_EPOCHS
    for c in (config.optim.g, config.optim.d):
        c.constant_steps = epochs * TRAIN_IMAGES
        c.decay_steps = decay_epochs * TRAIN_IMAGES
    config.train.num_steps = (epochs + decay_epochs) * TRAIN_IMAGES
    return config
