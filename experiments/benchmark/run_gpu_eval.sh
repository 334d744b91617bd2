#!/usr/bin/env bash
# Evaluation speed and a Fashion-MNIST run with evaluation on a GPU machine that already has JAX
# (CUDA), flax, optax and orbax. Run from the repository root; results go to ${OUT:-runs/gpu_eval}.
#   FASHION_DIR: a folder with Fashion-MNIST's four IDX .gz files (Debian's dataset-fashion-mnist)
#   WHEELS: a folder of wheels to install first (offline machines), optional
set -u
OUT=${OUT:-runs/gpu_eval}
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
  for w in "$WHEELS"/*.whl; do python3 -m pip install -q --no-deps "$w" >/dev/null 2>&1 || echo "skipped $w"; done
fi
python3 -m pip install -q --no-build-isolation --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
export GAN_JAX_CACHE="$OUT/cache" GAN_JAX_FASHION_MNIST_DIR="${FASHION_DIR:-/usr/share/datasets/fashion-mnist}"
# InceptionV3 features of 5,000 32x32 images (random weights: the same compute) and the scores
python3 -m gan_jax.benchmark --inception=5000 --config.data.resolution=32 --config.data.channels=3
# fashion_mnist_dcgan: 20,000 steps, classifier-space FID/KID/IS/PR of 10k samples every 2,000
/usr/bin/time -v python3 -m gan_jax.train --config=configs/fashion_mnist_dcgan.py \
  --workdir="$OUT/fashion_mnist_dcgan" 2> "$OUT/train_stderr.txt"
tail -n 25 "$OUT/train_stderr.txt" | grep -E "Elapsed|Maximum resident"
grep eval/fid "$OUT/fashion_mnist_dcgan/metrics.jsonl"
