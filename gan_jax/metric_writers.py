"""Scalars to WORKDIR/metrics.jsonl and TensorBoard event files; a no-op on processes other than 0."""

from __future__ import annotations

import json
import math
from pathlib import Path


class MetricWriter:
    """write(step, {name: float}) appends one JSON line and one TensorBoard scalar per name."""

    def __init__(self, workdir: str | Path, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        from tensorboardX import SummaryWriter

        self._jsonl = open(Path(workdir) / "metrics.jsonl", "a", encoding="utf-8")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in scalars.items()}
        json_safe = {k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": step, **json_safe}) + "\n")
        self._jsonl.flush()
        for name, value in scalars.items():
            self._tb.add_scalar(name, value, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
