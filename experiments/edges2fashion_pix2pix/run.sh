#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/edges2fashion_pix2pix.py three ways
# (l1_gan: the recipe, 100·L1 + GAN; l1: loss.gan_weight=0; gan: loss.l1_weight=0), one after
# another, scores each on the test split (evaluate's defaults) and writes the translation picture.
#   experiments/edges2fashion_pix2pix/run.sh [WORKDIR]   # default runs/edges2fashion_pix2pix
# TRAIN="l1 gan" trains only those arms (the others' WORKDIR/ARM must hold finished runs); every
# arm it trains must not exist yet (each run starts from scratch).
# STEPS=N shortens every arm to N steps (N/2 constant + N/2 linear decay, the recipe's split).
set -euo pipefail
WORKDIR=${1:-runs/edges2fashion_pix2pix}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python}
ARMS=(l1_gan l1 gan)
declare -A FLAGS=([l1_gan]="" [l1]="--config.loss.gan_weight=0" [gan]="--config.loss.l1_weight=0")
TRAIN=${TRAIN:-${ARMS[*]}}
LENGTH=()
if [ -n "${STEPS:-}" ]; then
  LENGTH=(--config.train.num_steps="$STEPS")
  for opt in g d; do
    LENGTH+=(--config.optim.$opt.constant_steps=$((STEPS / 2)) --config.optim.$opt.decay_steps=$((STEPS - STEPS / 2)))
  done
fi
for arm in $TRAIN; do
  if [ -e "$WORKDIR/$arm" ]; then
    echo "error: $WORKDIR/$arm exists; remove it or pass another WORKDIR (runs start from scratch)" >&2
    exit 2
  fi
done
# the code the numbers come from (described before the redirect truncates commit.txt: a tracked
# file emptied first would always read as -dirty)
COMMIT=$(git -C "$HERE" describe --always --dirty)
echo "$COMMIT" > "$HERE/commit.txt"
for arm in $TRAIN; do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$SECONDS
  # shellcheck disable=SC2086  # FLAGS holds zero or one flag
  "$PYTHON" -m gan_jax.train --workdir="$WORKDIR/$arm" \
    --config="$ROOT/configs/edges2fashion_pix2pix.py" ${FLAGS[$arm]} ${LENGTH[@]+"${LENGTH[@]}"}
  echo "$arm: $((SECONDS - start)) s, load average $load at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
    | tee -a "$HERE/wall_times.txt"
done
for arm in "${ARMS[@]}"; do
  "$PYTHON" -m gan_jax.evaluate --workdir="$WORKDIR/$arm" --out="$HERE/eval_$arm.json" > /dev/null
done
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
from PIL import Image, ImageDraw
workdir, here, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
test = np.load(f"{workdir}/test10.npz")
rows = [("edges A", test["images"])]
rows += [(f"G(A) {arm}", np.load(f"{workdir}/test10_{arm}.npz")["images"]) for arm in arms]
rows.append(("target B", test["targets"]))
scale, label = 3, 90  # 32 px images shown at 96 px, a label column on the left
side = 32 * scale
picture = Image.new("L", (label + side * 10, side * len(rows)), 255)
draw = ImageDraw.Draw(picture)
for r, (name, images) in enumerate(rows):
    draw.text((4, r * side + side // 2 - 6), name, fill=0)
    for c, image in enumerate(images):
        tile = Image.fromarray(image[..., 0]).resize((side, side), Image.NEAREST)
        picture.paste(tile, (label + c * side, r * side))
picture.save(f"{here}/translations.png")
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
