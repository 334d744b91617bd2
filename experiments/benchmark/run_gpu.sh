#!/usr/bin/env bash
# The benchmark table of experiments/benchmark/README.md on a GPU machine that already has JAX
# (CUDA), flax, optax, orbax and PyTorch: run from the repository root.
set -u
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and PyTorch share the GPU in one process
python3 -m pip install -q --no-build-isolation --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
bench="python3 -m gan_jax.benchmark --torch --steps=20"
$bench
$bench --config=configs/cifar10_dcgan.py
$bench --config=configs/cifar10_dcgan.py --config.data.resolution=64 --config.data.channels=3
$bench --config=configs/cifar10_dcgan.py --config.data.resolution=64 --config.train.batch_size=256
python3 -m gan_jax.benchmark --steps=20 --config=configs/cifar10_wgan_gp.py
