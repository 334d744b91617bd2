"""Tasks: what a GAN trains, one module per model family, looked up by `config.model.name`.

image_gan: ImageGANTask (DCGAN, MLP, ResNet/SNGAN/BigGAN) and the protocol every task follows;
image_to_image: the protocol answers the image-to-image tasks share (ImageToImageTask);
stylegan2, progressive: the families that override parts of it; cyclegan: unpaired image-to-image
translation with the same step protocol (its own losses, task-owned image pools); pix2pix: paired
image-to-image translation; inpainting: DeepFill v2 filling of masked regions (image-to-image on
unpaired images, masks drawn per example).
"""

from __future__ import annotations

from typing import Callable

import ml_collections

from gan_jax.tasks import cyclegan, image_gan, inpainting, pix2pix, progressive, stylegan2
from gan_jax.tasks.image_gan import (AUGMENT_FAKE, AUGMENT_REAL, INTERPOLATION, LABEL, LATENT,
                                     ImageGANTask, apply_module, fold_keys, task_options)

# config.model.name -> builder(config) -> task.
TASKS: dict[str, Callable[[ml_collections.ConfigDict], ImageGANTask]] = {
    "dcgan": image_gan.build_task, "mlp": image_gan.build_task, "resnet": image_gan.build_task,
    "stylegan2": stylegan2.build_task, "progressive": progressive.build_task,
    "cyclegan": cyclegan.build_task, "pix2pix": pix2pix.build_task,
    "inpainting": inpainting.build_task}


def build_task(config: ml_collections.ConfigDict) -> ImageGANTask:
    """The task a config describes."""
    return TASKS[config.model.name](config)


__all__ = ["AUGMENT_FAKE", "AUGMENT_REAL", "INTERPOLATION", "LABEL", "LATENT", "TASKS",
           "ImageGANTask", "apply_module", "build_task", "fold_keys", "task_options"]
