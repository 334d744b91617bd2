#!/usr/bin/env bash
# Regenerates this experiment from scratch: configs/digits500_stylegan2_ada.py (StyleGAN2 on 500 of
# the digits, 16 px) with ADA ("ada") and without any augmentation ("none"), the same seed and
# steps, one arm after the other; scores 2,000 EMA samples of each (evaluate's classifier-space
# FID, KID, precision, recall against all 1,797 digits), writes each arm's grid and results.md
# (scores, wall times with the load average, p's trajectory from metrics.jsonl).
#   experiments/small_data_ada/run.sh [WORKDIR]    # default runs/small_data_ada
# STEPS=N trains each arm N steps (default 600); ARMS="ada" runs only those arms (results.md
# then lists the arms whose eval_ARM.json exist).
set -euo pipefail
WORKDIR=${1:-runs/small_data_ada}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python}
STEPS=${STEPS:-600}
read -r -a ARMS <<< "${ARMS:-ada none}"
declare -A FLAGS=([ada]="" [none]="--config.augment.kind=diffaugment")
for arm in "${ARMS[@]}"; do
  if [ -e "$WORKDIR/$arm" ]; then
    echo "error: $WORKDIR/$arm exists; remove it or pass another WORKDIR (runs start from scratch)" >&2
    exit 2
  fi
done
# described before the redirect truncates commit.txt (a tracked file emptied first reads -dirty)
COMMIT=$(git -C "$HERE" describe --always --dirty)
echo "$COMMIT" > "$HERE/commit.txt"
for arm in "${ARMS[@]}"; do
  began=$(date +%s)
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  # shellcheck disable=SC2086  # FLAGS holds zero or one flag
  "$PYTHON" -m gan_jax.train --workdir="$WORKDIR/$arm" \
    --config="$ROOT/configs/digits500_stylegan2_ada.py" --config.train.num_steps="$STEPS" ${FLAGS[$arm]}
  echo "{\"train_s\": $(( $(date +%s) - began )), \"load_before\": \"$load_before\"," \
       "\"load_after\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" > "$HERE/wall_$arm.json"
  "$PYTHON" -m gan_jax.evaluate --workdir="$WORKDIR/$arm" --checkpoint="$STEPS" \
    --num_samples=2000 --out="$HERE/eval_$arm.json" > /dev/null
  "$PYTHON" -m gan_jax.sample --workdir="$WORKDIR/$arm" --checkpoint="$STEPS" --num=64 --seed=0 \
    --out="$HERE/samples_$arm.png"
  cp "$WORKDIR/$arm/metrics.jsonl" "$HERE/metrics_$arm.jsonl"
done
"$PYTHON" "$HERE/summarize.py" "$HERE" "$STEPS" > "$HERE/results.md"
cat "$HERE/results.md"
