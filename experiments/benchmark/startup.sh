#!/usr/bin/env bash
# Time to first step, cold (empty compilation cache) vs warm (a restart: the cache filled by the
# cold run), for the default config and a StyleGAN2 config: wall time of a 1-step run of the train
# command, imports included; plus `import gan_jax.train` alone.
#   experiments/benchmark/startup.sh [OUT_DIR]      # default: a fresh temporary folder
set -euo pipefail
OUT=${1:-$(mktemp -d)}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIGS=${CONFIGS:-"$HERE/../../configs/digits_dcgan.py $HERE/../../configs/digits_stylegan2.py"}
unset JAX_COMPILATION_CACHE_DIR
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
echo "import gan_jax.train: $(seconds "$PYTHON" -c 'import gan_jax.train') s"
echo "| config | cold s | warm s | no cache s |"
echo "|---|---|---|---|"
for config in $CONFIGS; do
  name=$(basename "$config" .py)
  run() { rm -rf "$OUT/$name-$1"; seconds "$PYTHON" -m gan_jax.train --config="$config" \
            --workdir="$OUT/$name-$1" --compilation_cache="$2" --config.train.num_steps=1 \
            --config.train.sample_every_steps=0 --config.eval.every_steps=0; }
  cold=$(run cold "$OUT/cache-$name")
  warm=$(run warm "$OUT/cache-$name")
  off=$(run off off)
  echo "| $name | $cold | $warm | $off |"
done
