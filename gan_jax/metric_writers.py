"""Scalars to WORKDIR/metrics.jsonl and TensorBoard event files (and sample grids to TensorBoard's
images); a no-op on processes other than 0."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def drop_steps_after(path: Path, step: int) -> None:
    """Rewrite the metrics.jsonl at `path` (if any) without its lines of steps > `step`, or cut
    short by a crash; atomic (a crash leaves the old or the new file)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            if json.loads(line)["step"] <= step and line.endswith("\n"):
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


class MetricWriter:
    """write(step, {name: float}) appends one JSON line and one TensorBoard scalar per name;
    write_image(step, tag, png) adds a sample grid to TensorBoard's images.

    A run resumed at step `start` opens its event file with TensorBoard's restart marker (a
    SessionLog START at step start + 1): TensorBoard then hides the scalars of steps > start that
    a crashed run wrote before it (tensorboard's event_accumulator purges on that marker), as
    drop_steps_after does for metrics.jsonl.
    """

    def __init__(self, workdir: str | Path, enabled: bool = True, start: int = 0):
        self.enabled = enabled
        if not enabled:
            return
        from tensorboardX import SummaryWriter

        self._jsonl = open(Path(workdir) / "metrics.jsonl", "a", encoding="utf-8")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=start + 1)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in scalars.items()}
        json_safe = {k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": step, **json_safe}) + "\n")
        self._jsonl.flush()
        for name, value in scalars.items():
            self._tb.add_scalar(name, value, step)

    def write_image(self, step: int, tag: str, path: Path) -> None:
        """The PNG at `path` (a sample grid) as a TensorBoard image `tag` at `step`."""
        if not self.enabled:
            return
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._tb.add_image(tag, pixels, step, dataformats="HWC")
        self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
