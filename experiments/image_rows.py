"""The image-to-image experiments' pictures: labelled rows of uint8 images, shown 3x larger."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def save_rows(rows: list[tuple[str, np.ndarray]], path: str, label: int, scale: int = 3) -> None:
    """Writes rows of (name, uint8 (N, H, W, C) images) as one picture, a label column of `label`
    pixels on the left, every image `scale` times its size (nearest)."""
    height, width, channels = rows[0][1].shape[1:]
    mode = "L" if channels == 1 else "RGB"
    columns = max(len(images) for _, images in rows)
    picture = Image.new(mode, (label + width * scale * columns, height * scale * len(rows)),
                        255 if mode == "L" else (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for r, (name, images) in enumerate(rows):
        top = r * height * scale
        draw.text((4, top + height * scale // 2 - 6), name, fill=0 if mode == "L" else (0, 0, 0))
        for c, image in enumerate(images):
            tile = Image.fromarray(image[..., 0] if mode == "L" else image)
            picture.paste(tile.resize((width * scale, height * scale), Image.NEAREST),
                          (label + c * width * scale, top))
    picture.save(path)
