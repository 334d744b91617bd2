#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains the default recipe (configs/digits_mlp.py),
# scores 2,000 samples of the EMA and of the raw generator, and writes the sample grid (8x8 px per
# digit, and a copy enlarged 6x with nearest-neighbour pixels to look at).
#   experiments/digits_mlp/run.sh [WORKDIR]      # WORKDIR must not exist; default runs/digits_mlp
set -euo pipefail
WORKDIR=${1:-runs/digits_mlp}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
if [ -e "$WORKDIR" ]; then
  echo "error: $WORKDIR exists; remove it or pass another WORKDIR (the run must start from scratch)" >&2
  exit 2
fi
# the code the numbers come from (described before the redirect truncates commit.txt: a tracked
# file emptied first would always read as -dirty)
COMMIT=$(git -C "$HERE" describe --always --dirty)
echo "$COMMIT" > "$HERE/commit.txt"
time "$PYTHON" -m gan_jax.train --config="$HERE/../../configs/digits_mlp.py" --workdir="$WORKDIR"
for generator in ema raw; do
  "$PYTHON" -m gan_jax.evaluate --workdir="$WORKDIR" --checkpoint=latest --num_samples=2000 \
    --generator=$generator --out="$HERE/eval_$generator.json" > /dev/null
done
"$PYTHON" -m gan_jax.sample --workdir="$WORKDIR" --num=64 --seed=0 --out="$HERE/samples.png"
"$PYTHON" - "$HERE" <<'PY'
import json, sys
from PIL import Image
here = sys.argv[1]
grid = Image.open(f"{here}/samples.png")
grid.resize((grid.width * 6, grid.height * 6), Image.NEAREST).save(f"{here}/samples_x6.png")
for g in ("ema", "raw"):
    r = json.load(open(f"{here}/eval_{g}.json"))
    s = r["scores"]
    print(f"{g}: step {r['step']}  FID {s['fid']:.2f}  KID {s['kid']:.1f}  IS {s['is']:.2f}  "
          f"precision {s['precision']:.3f}  recall {s['recall']:.3f}")
PY
