#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/digits_progressive.py (4 -> 8 -> 16 px),
# scores 2,000 samples of the EMA and of the raw generator at 16 px, and writes the 64-sample grid
# (experiments/digits_run.sh).
#   experiments/digits_progressive/run.sh [WORKDIR]   # WORKDIR must not exist; default runs/digits_progressive
CONFIG=digits_progressive.py
ENLARGE=0
# shellcheck source=../digits_run.sh
source "$(dirname "$0")/../digits_run.sh"
