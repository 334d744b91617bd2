# shellcheck shell=bash
# The shared part of the image-to-image experiments' run.sh (sourced, after the caller has set
# CONFIG, the config file under configs/; DEFAULT_ARMS, its arms in order; FLAGS, an associative
# array arm -> the config flags of that arm, "" for the recipe):
#   experiments/EXPERIMENT/run.sh [WORKDIR]   # default runs/EXPERIMENT
# ARMS="a b" runs only those arms (training, scores, picture rows); TRAIN="b" trains only those
# (the other arms' WORKDIR/ARM must hold finished runs); every arm it trains must not exist yet
# (each run starts from scratch). STEPS=N shortens every arm to N steps (`split_decay` adds the
# N/2 constant + N/2 linear decay split of the recipes with a decaying learning rate).
# `train_arms` trains the arms one after the other, appending each one's wall time and load
# average to wall_times.txt, and writes commit.txt; `evaluate_arms` scores each arm on its test
# split with `python -m gan_jax.evaluate`'s defaults into eval_ARM.json.
set -euo pipefail
WORKDIR=${1:-runs/$(basename "$(dirname "$0")")}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python}
read -r -a ARMS <<< "${ARMS:-$DEFAULT_ARMS}"
TRAIN=${TRAIN:-${ARMS[*]}}
LENGTH=()
if [ -n "${STEPS:-}" ]; then
  LENGTH=(--config.train.num_steps="$STEPS")
fi

split_decay() {
  if [ -n "${STEPS:-}" ]; then
    for opt in g d; do
      LENGTH+=(--config.optim.$opt.constant_steps=$((STEPS / 2)) --config.optim.$opt.decay_steps=$((STEPS - STEPS / 2)))
    done
  fi
}

train_arms() {
  local arm load start commit
  for arm in $TRAIN; do
    if [ -e "$WORKDIR/$arm" ]; then
      echo "error: $WORKDIR/$arm exists; remove it or pass another WORKDIR (runs start from scratch)" >&2
      exit 2
    fi
  done
  # the code the numbers come from (described before the redirect truncates commit.txt: a tracked
  # file emptied first would always read as -dirty)
  commit=$(git -C "$HERE" describe --always --dirty)
  echo "$commit" > "$HERE/commit.txt"
  for arm in $TRAIN; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$SECONDS
    # shellcheck disable=SC2086  # FLAGS holds zero or more flags
    "$PYTHON" -m gan_jax.train --workdir="$WORKDIR/$arm" --config="$ROOT/configs/$CONFIG" \
      ${FLAGS[$arm]} ${LENGTH[@]+"${LENGTH[@]}"}
    echo "$arm: $((SECONDS - start)) s, load average $load at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
      | tee -a "$HERE/wall_times.txt"
  done
}

evaluate_arms() {
  local arm
  for arm in "${ARMS[@]}"; do
    "$PYTHON" -m gan_jax.evaluate --workdir="$WORKDIR/$arm" --out="$HERE/eval_$arm.json" > /dev/null
  done
}
