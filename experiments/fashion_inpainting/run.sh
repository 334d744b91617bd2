#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/fashion_inpainting.py with the GAN term
# (l1_gan: the recipe, L1 hole + L1 valid + 0.1·hinge) and without it (l1: inpaint.gan_weight=0),
# one after the other, scores both on the test split per mask-area bin (evaluate's defaults) and
# writes the picture of masked inputs, fills and originals. Knobs (ARMS, TRAIN, STEPS): see
# experiments/image_to_image_run.sh.
#   experiments/fashion_inpainting/run.sh [WORKDIR]   # default runs/fashion_inpainting
CONFIG=fashion_inpainting.py
DEFAULT_ARMS="l1_gan l1"
declare -A FLAGS=([l1_gan]="" [l1]="--config.inpaint.gan_weight=0")
# shellcheck source=../image_to_image_run.sh
source "$(dirname "$0")/../image_to_image_run.sh"
train_arms
evaluate_arms
# the picture: the first 10 test images with the masks of evaluate (seed eval.seed = 0), filled
# by each arm
"$PYTHON" - "$WORKDIR/test10.npz" <<'PY'
import sys
import numpy as np
from gan_jax.data.sources import make_source
test = make_source("fashion_mnist:test", 32, 1)
np.savez(sys.argv[1], images=test.get(np.arange(10))["image"])
PY
for arm in "${ARMS[@]}"; do
  "$PYTHON" -m gan_jax.translate --workdir="$WORKDIR/$arm" --input="$WORKDIR/test10.npz" \
    --out="$WORKDIR/test10_$arm.npz" --seed=0 --save_masks
done
"$PYTHON" - "$WORKDIR" "$HERE" "${ARMS[@]}" <<'PY'
import json, sys
import numpy as np
workdir, here, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, f"{here}/..")
from image_rows import save_rows
originals = np.load(f"{workdir}/test10.npz")["images"]
fills = {arm: np.load(f"{workdir}/test10_{arm}.npz") for arm in arms}
mask = fills[arms[0]]["masks"].reshape(originals.shape[:3] + (1,)) > 0
rows = [("masked input", np.where(mask, np.uint8(128), originals))]
rows += [(f"fill {arm}", fills[arm]["images"]) for arm in arms]
rows.append(("original", originals))
save_rows(rows, f"{here}/fills.png", label=90)
bins = ("0-20%", "20-40%", "40-60%")
print("| arm | step | area bin | images | hole L1 | hole PSNR (dB) | L1 | PSNR (dB) | SSIM |")
print("|---|---|---|---|---|---|---|---|---|")
for arm in arms:
    r = json.load(open(f"{here}/eval_{arm}.json"))
    s = r["scores"]
    for name, prefix in [("all", "")] + [(b, f"{b}/") for b in bins]:
        count = s[f"{prefix}count"] if prefix else r["num_samples"]
        print(f"| {arm} | {r['step']} | {name} | {count} | {s[prefix + 'hole/l1']:.4f} | "
              f"{s[prefix + 'hole/psnr']:.2f} | {s[prefix + 'l1']:.4f} | {s[prefix + 'psnr']:.2f} | "
              f"{s[prefix + 'ssim']:.4f} |")
print("| arm | FID | KID | IS | precision | recall | class share |")
print("|---|---|---|---|---|---|---|")
for arm in arms:
    s = json.load(open(f"{here}/eval_{arm}.json"))["scores"]
    print(f"| {arm} | {s['fid']:.2f} | {s['kid']:.3f} | {s['is']:.2f} | {s['precision']:.3f} | "
          f"{s['recall']:.3f} | {s['class_share']:.3f} |")
PY
