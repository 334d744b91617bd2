#!/usr/bin/env bash
# The GAN data augmentation experiment (see README.md): 2 data sets x 3 real-data budgets x 3 seeds,
# a conditional GAN trained on each subset, the classifier on real / real + synthetic / synthetic.
#   experiments/augmentation/run.sh [OUT] [--smoke]     # OUT default runs/augmentation; resumable
# Writes OUT/scores.jsonl and, unless --smoke, results.md, results.svg, commit.txt and
# environment.json (a GAN run's: CPU, library versions) here.
set -euo pipefail
OUT=${1:-runs/augmentation}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
# every GAN run and classifier has the same shapes: compile each once (a cache kept in OUT)
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$OUT/xla_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
if [ "${1:-}" != "--smoke" ]; then
  # described before the redirect truncates commit.txt (a tracked file emptied first reads -dirty)
  COMMIT=$(git -C "$HERE" describe --always --dirty)
  echo "$COMMIT" > "$HERE/commit.txt"
fi
time "$PYTHON" "$HERE/augment.py" --out="$OUT" "$@"
if [ "${1:-}" != "--smoke" ]; then
  # the machine type and versions the numbers belong to (README, "Reproducibility")
  env=$(find "$OUT/gans" -name environment.json -print -quit 2>/dev/null || true)
  if [ -n "$env" ]; then cp "$env" "$HERE/environment.json"; fi
fi
