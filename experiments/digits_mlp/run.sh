#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains the default recipe (configs/digits_mlp.py),
# scores 2,000 samples of the EMA and of the raw generator, and writes the sample grid (8x8 px per
# digit, and a copy enlarged 6x to look at) (experiments/digits_run.sh).
#   experiments/digits_mlp/run.sh [WORKDIR]      # WORKDIR must not exist; default runs/digits_mlp
CONFIG=digits_mlp.py
ENLARGE=6
# shellcheck source=../digits_run.sh
source "$(dirname "$0")/../digits_run.sh"
