"""Evaluation: sample-quality scores (FID, KID, IS, precision/recall) and the feature extractors
they are computed in (InceptionV3 for the standard numbers, a small trained classifier offline).

This module names the metrics `evaluate` computes, what each reports and the counts each needs;
config validation reads it without importing the evaluation code.
"""

from __future__ import annotations

import ml_collections

METRICS = ("fid", "kid", "is", "pr", "cas")
# What each metric reports, and whether lower is better for the best-checkpoint choice.
RESULT_KEYS = {"fid": ("fid",), "kid": ("kid", "kid_std"), "is": ("is", "is_std"),
               "pr": ("precision", "recall"), "cas": ("cas", "cas_real")}
LOWER_IS_BETTER = {"fid": True, "kid": True, "is": False, "precision": False, "recall": False,
                   "cas": False,
                   # image-to-image (evaluate.TranslationEvaluator), reported per direction
                   "l1": True, "psnr": False, "ssim": False, "class_share": False}


def parse_metrics(text: str) -> tuple[str, ...]:
    """'fid, kid' -> ('fid', 'kid'); ValueError naming an unknown one."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(METRICS)}")
    return names


def check_counts(metrics: tuple[str, ...], num_samples: int, num_real: int | None,
                 eval_config: ml_collections.ConfigDict) -> None:
    """ValueError (one line, naming the key) when a metric cannot be computed from these counts
    (`num_real` None: not known yet, not checked)."""
    need = {"fid": 2, "kid": 2, "is": eval_config.is_splits, "pr": eval_config.pr_k + 1, "cas": 1}
    for name in metrics:
        if num_samples < need[name]:
            raise ValueError(f"{name} needs at least {need[name]} generated samples, got "
                             f"eval.num_samples={num_samples}; raise --num_samples")
        if name not in ("is", "cas") and num_real is not None and num_real < need[name]:
            raise ValueError(f"{name} needs at least {need[name]} real images, the data set gives "
                             f"{num_real}; use more data or eval.num_real=0 (all)")
