"""The train-step protocol's answers shared by every image-to-image task (pix2pix, CycleGAN,
inpainting): what differs from `image_gan.ImageGANTask`'s noise-to-image defaults is said once
here, and each task states only its own data, networks, losses and what its steps write."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


class ImageToImageTask:
    """Base of the image-to-image tasks (frozen dataclasses that add their fields): no labels, no
    lazy regulariser, D's update before G's, the EMA generator averaging every collection, no
    task-owned state and no optimizer resets unless a task says otherwise."""

    image_to_image = True  # has `translate` and `directions`
    g_reg_every = 0  # no lazy G regulariser (train_step: StyleGAN2's path length)
    g_reg_writes = ()
    g_first = False  # D's update before G's (train_step)
    num_classes = 0
    separate_r1 = False
    ema_collections = "average"

    def init_task_state(self, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        """{}: the task owns no state beside the networks."""
        return {}

    def resets_optimizers(self, step: jax.Array) -> jax.Array:
        """bool: never (the train-step protocol of tasks.ImageGANTask)."""
        return jnp.zeros((), bool)
