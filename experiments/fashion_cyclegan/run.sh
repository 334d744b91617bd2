#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/fashion_cyclegan.py with the identity
# loss (identity: the recipe, 0.5·λ) and without it (no_identity: loss.identity_weight=0), one
# after the other, scores both directions on the test split (evaluate's defaults) and writes the
# translation picture.
#   experiments/fashion_cyclegan/run.sh [WORKDIR]   # default runs/fashion_cyclegan
# Knobs (ARMS, TRAIN, STEPS: N/2 constant + N/2 linear decay, the recipe's split): see
# experiments/image_to_image_run.sh.
CONFIG=fashion_cyclegan.py
DEFAULT_ARMS="identity no_identity"
declare -A FLAGS=([identity]="" [no_identity]="--config.loss.identity_weight=0")
# shellcheck source=../image_to_image_run.sh
source "$(dirname "$0")/../image_to_image_run.sh"
split_decay
train_arms
evaluate_arms
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
workdir, here, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, f"{here}/..")
from image_rows import save_rows
load = lambda name: np.load(f"{workdir}/{name}.npz")["images"]
rows = []
for d, real, fake in (("a2b", "sneaker A", "G_ab(A)"), ("b2a", "boot B", "G_ba(B)")):
    rows.append((real, load(f"test10_{d[0]}")))
    rows += [(f"{fake} {arm}", load(f"test10_{arm}_{d}")) for arm in arms]
save_rows(rows, f"{here}/translations.png", label=130)
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
