#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/fashion_cyclegan.py with the identity
# loss (identity: the recipe, 0.5·λ) and without it (no_identity: loss.identity_weight=0), one
# after the other, scores both directions on the test split (evaluate's defaults) and writes the
# translation picture.
#   experiments/fashion_cyclegan/run.sh [WORKDIR]   # default runs/fashion_cyclegan
# ARMS="identity" runs only those arms (training, scores, picture rows); TRAIN="no_identity"
# trains only those (the other arms' WORKDIR/ARM must hold finished runs); every arm it trains
# must not exist yet (each run starts from scratch).
# STEPS=N shortens every arm to N steps (N/2 constant + N/2 linear decay, the recipe's split).
set -euo pipefail
WORKDIR=${1:-runs/fashion_cyclegan}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python}
read -r -a ARMS <<< "${ARMS:-identity no_identity}"
declare -A FLAGS=([identity]="" [no_identity]="--config.loss.identity_weight=0")
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
    --config="$ROOT/configs/fashion_cyclegan.py" ${FLAGS[$arm]} ${LENGTH[@]+"${LENGTH[@]}"}
  echo "$arm: $((SECONDS - start)) s, load average $load at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
    | tee -a "$HERE/wall_times.txt"
done
for arm in "${ARMS[@]}"; do
  "$PYTHON" -m gan_jax.evaluate --workdir="$WORKDIR/$arm" --out="$HERE/eval_$arm.json" > /dev/null
done
# the picture: the first 10 test sneakers (A) and ankle boots (B), translated by each arm
"$PYTHON" - "$WORKDIR" <<'PY'
import sys
import numpy as np
from gan_jax.data.image_pairs import make_pair_source
test = make_pair_source("fashion_sneakers2boots", 32, 1, split="test")
for side, source in (("a", test.a), ("b", test.b)):
    np.savez(f"{sys.argv[1]}/test10_{side}.npz", images=source.get(np.arange(10))["image"])
PY
for arm in "${ARMS[@]}"; do
  for d in a2b b2a; do
    "$PYTHON" -m gan_jax.translate --workdir="$WORKDIR/$arm" --direction=$d \
      --input="$WORKDIR/test10_${d:0:1}.npz" --out="$WORKDIR/test10_${arm}_$d.npz"
  done
done
"$PYTHON" - "$WORKDIR" "$HERE" "${ARMS[@]}" <<'PY'
import json, sys
import numpy as np
from PIL import Image, ImageDraw
workdir, here, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
load = lambda name: np.load(f"{workdir}/{name}.npz")["images"]
rows = []
for d, real, fake in (("a2b", "sneaker A", "G_ab(A)"), ("b2a", "boot B", "G_ba(B)")):
    rows.append((real, load(f"test10_{d[0]}")))
    rows += [(f"{fake} {arm}", load(f"test10_{arm}_{d}")) for arm in arms]
scale, label = 3, 130  # 32 px images shown at 96 px, a label column on the left
side = 32 * scale
picture = Image.new("L", (label + side * 10, side * len(rows)), 255)
draw = ImageDraw.Draw(picture)
for r, (name, images) in enumerate(rows):
    draw.text((4, r * side + side // 2 - 6), name, fill=0)
    for c, image in enumerate(images):
        tile = Image.fromarray(image[..., 0]).resize((side, side), Image.NEAREST)
        picture.paste(tile, (label + c * side, r * side))
picture.save(f"{here}/translations.png")
print("| arm | direction | step | FID | KID | IS | precision | recall | class share |")
print("|---|---|---|---|---|---|---|---|---|")
for arm in arms:
    r = json.load(open(f"{here}/eval_{arm}.json"))
    for d in ("a2b", "b2a"):
        s = {k.split("/")[1]: v for k, v in r["scores"].items() if k.startswith(d)}
        print(f"| {arm} | {d} | {r['step']} | {s['fid']:.2f} | {s['kid']:.3f} | {s['is']:.2f} | "
              f"{s['precision']:.3f} | {s['recall']:.3f} | {s['class_share']:.3f} |")
print(f"test split: {r['num_samples']} translated, {r['num_real']} real target images")
PY
