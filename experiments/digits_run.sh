# shellcheck shell=bash
# The shared part of the digits experiments' run.sh (sourced, after the caller has set CONFIG, its
# recipe's file under configs/, ENLARGE, 0 or the factor of an enlarged copy of the grid, and
# optionally PER_CLASS, for a class-conditional recipe the number of samples per class row):
#   experiments/EXPERIMENT/run.sh [WORKDIR]   # WORKDIR must not exist; default runs/EXPERIMENT
# Trains CONFIG from scratch (named explicitly: the train command's default config is whichever
# recipe is the default today), scores 2,000 samples of the EMA and of the raw generator
# (eval_ema.json, eval_raw.json), writes the 64-sample grid (samples.png; with ENLARGE, also
# samples_xENLARGE.png, nearest-neighbour pixels; with PER_CLASS, classes.png, one row per class),
# commit.txt and environment.json (the train run's: the machine and versions), and prints the scores.
set -euo pipefail
WORKDIR=${1:-runs/$(basename "$(dirname "$0")")}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python}
if [ -e "$WORKDIR" ]; then
  echo "error: $WORKDIR exists; remove it or pass another WORKDIR (the run must start from scratch)" >&2
  exit 2
fi
# the code the numbers come from (described before the redirect truncates commit.txt: a tracked
# file emptied first would always read as -dirty)
COMMIT=$(git -C "$HERE" describe --always --dirty)
echo "$COMMIT" > "$HERE/commit.txt"
time "$PYTHON" -m gan_jax.train --config="$ROOT/configs/$CONFIG" --workdir="$WORKDIR"
# the machine type the bits belong to (CPU model and vector ISA, library versions: README,
# "Reproducibility")
if [ -f "$WORKDIR/environment.json" ]; then cp "$WORKDIR/environment.json" "$HERE/environment.json"; fi
for generator in ema raw; do
  "$PYTHON" -m gan_jax.evaluate --workdir="$WORKDIR" --checkpoint=latest --num_samples=2000 \
    --generator=$generator --out="$HERE/eval_$generator.json" > /dev/null
done
"$PYTHON" -m gan_jax.sample --workdir="$WORKDIR" --num=64 --seed=0 --out="$HERE/samples.png"
if [ -n "${PER_CLASS:-}" ]; then
  "$PYTHON" -m gan_jax.sample --workdir="$WORKDIR" --per_class="$PER_CLASS" --seed=0 \
    --out="$HERE/classes.png"
fi
"$PYTHON" - "$HERE" "$ENLARGE" <<'PY'
import json, sys
here, enlarge = sys.argv[1], int(sys.argv[2])
if enlarge:
    from PIL import Image
    grid = Image.open(f"{here}/samples.png")
    grid.resize((grid.width * enlarge, grid.height * enlarge), Image.NEAREST).save(
        f"{here}/samples_x{enlarge}.png")
for g in ("ema", "raw"):
    r = json.load(open(f"{here}/eval_{g}.json"))
    s = r["scores"]
    print(f"{g}: step {r['step']}  FID {s['fid']:.2f}  KID {s['kid']:.1f}  IS {s['is']:.2f}  "
          f"precision {s['precision']:.3f}  recall {s['recall']:.3f}")
PY
