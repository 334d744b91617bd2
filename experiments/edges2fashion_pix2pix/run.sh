#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/edges2fashion_pix2pix.py three ways
# (l1_gan: the recipe, 100·L1 + GAN; l1: loss.gan_weight=0; gan: loss.l1_weight=0), one after
# another, scores each on the test split (evaluate's defaults) and writes the translation picture.
#   experiments/edges2fashion_pix2pix/run.sh [WORKDIR]   # default runs/edges2fashion_pix2pix
# Knobs (ARMS, TRAIN, STEPS: N/2 constant + N/2 linear decay, the recipe's split): see
# experiments/image_to_image_run.sh.
CONFIG=edges2fashion_pix2pix.py
DEFAULT_ARMS="l1_gan l1 gan"
declare -A FLAGS=([l1_gan]="" [l1]="--config.loss.gan_weight=0" [gan]="--config.loss.l1_weight=0")
# shellcheck source=../image_to_image_run.sh
source "$(dirname "$0")/../image_to_image_run.sh"
split_decay
train_arms
evaluate_arms
# the picture: the first 10 test pairs, translated by each arm at the paper's test time
"$PYTHON" - "$WORKDIR/test10.npz" <<'PY'
import sys
import numpy as np
from gan_jax.data.image_pairs import make_pair_source
test = make_pair_source("edges2fashion", 32, 1, split="test")
np.savez(sys.argv[1], images=test.a[:10], targets=test.b[:10])
PY
for arm in "${ARMS[@]}"; do
  "$PYTHON" -m gan_jax.translate --workdir="$WORKDIR/$arm" --input="$WORKDIR/test10.npz" \
    --out="$WORKDIR/test10_$arm.npz"
done
"$PYTHON" - "$WORKDIR" "$HERE" "${ARMS[@]}" <<'PY'
import json, sys
import numpy as np
workdir, here, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, f"{here}/..")
from image_rows import save_rows
test = np.load(f"{workdir}/test10.npz")
rows = [("edges A", test["images"])]
rows += [(f"G(A) {arm}", np.load(f"{workdir}/test10_{arm}.npz")["images"]) for arm in arms]
rows.append(("target B", test["targets"]))
save_rows(rows, f"{here}/translations.png", label=90)
print("| arm | step | L1 | PSNR (dB) | SSIM | FID | KID | IS | precision | recall | class share |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for arm in arms:
    r = json.load(open(f"{here}/eval_{arm}.json"))
    s = {k.split("/")[1]: v for k, v in r["scores"].items()}
    print(f"| {arm} | {r['step']} | {s['l1']:.4f} | {s['psnr']:.2f} | {s['ssim']:.4f} | "
          f"{s['fid']:.2f} | {s['kid']:.3f} | {s['is']:.2f} | {s['precision']:.3f} | "
          f"{s['recall']:.3f} | {s['class_share']:.3f} |")
print(f"test split: {r['num_samples']['a2b']} translated pairs, {r['num_real']['a2b']} real B")
PY
