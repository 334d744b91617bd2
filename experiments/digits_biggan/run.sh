#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/digits_biggan.py, scores 2,000 samples
# of the EMA and of the raw generator, and writes the 64-sample grid and the per-class grid (8 per
# digit, one row per class) (experiments/digits_run.sh).
#   experiments/digits_biggan/run.sh [WORKDIR]   # WORKDIR must not exist; default runs/digits_biggan
CONFIG=digits_biggan.py
ENLARGE=0
PER_CLASS=8
# shellcheck source=../digits_run.sh
source "$(dirname "$0")/../digits_run.sh"
