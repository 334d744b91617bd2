"""CycleGAN Monet <-> photo with the published settings (TFDS `cycle_gan/monet2photo`; needs a
GPU and the download): configs/horse2zebra_cyclegan.py's networks, losses and 100 + 100 epochs,
where an epoch is 6,287 iterations at batch 1 (trainA 1,072 paintings, trainB 6,287 photos, the
TFDS catalog counts; the reference's epoch is max(|trainA|, |trainB|))."""

from gan_jax.configs import horse2zebra_cyclegan

EPOCH = 6287


def get_config():
    return horse2zebra_cyclegan.get_config("tfds:cycle_gan/monet2photo", EPOCH)
