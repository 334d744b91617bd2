#!/usr/bin/env bash
# Regenerates this experiment from scratch: trains configs/digits_dcgan.py, scores 2,000 samples
# of the EMA and of the raw generator, and writes the sample grid (experiments/digits_run.sh).
#   experiments/digits_dcgan/run.sh [WORKDIR]      # WORKDIR must not exist; default runs/digits_dcgan
CONFIG=digits_dcgan.py
ENLARGE=0
# shellcheck source=../digits_run.sh
source "$(dirname "$0")/../digits_run.sh"
