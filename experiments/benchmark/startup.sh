#!/usr/bin/env bash
# Time to first step, cold (empty compilation cache) vs warm (a restart: the cache filled by the
# cold run), for the default config and a StyleGAN2 config: wall time and CPU seconds (user + sys,
# the steadier figure on a shared machine) of a 1-step run of the train command, imports
# included; plus `import gan_jax.train` alone, and the load average before each config.
#   experiments/benchmark/startup.sh [OUT_DIR]      # default: a fresh temporary folder
set -euo pipefail
OUT=${1:-$(mktemp -d)}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIGS=${CONFIGS:-"$HERE/../../configs/digits_dcgan.py $HERE/../../configs/digits_stylegan2.py"}
unset JAX_COMPILATION_CACHE_DIR
TIMEFORMAT="%R %U %S"
seconds() { local t; t=$( { time "$@" > /dev/null 2>&1; } 2>&1 ); awk '{printf "%.2f %.2f", $1, $2 + $3}' <<< "$t"; }
read -r wall cpu <<< "$(seconds "$PYTHON" -c 'import gan_jax.train')"
echo "import gan_jax.train: $wall s wall, $cpu s CPU"
echo "| config | cold s | warm s | no cache s | cold CPU s | warm CPU s | load |"
echo "|---|---|---|---|---|---|---|"
for config in $CONFIGS; do
  name=$(basename "$config" .py)
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
  run() { rm -rf "$OUT/$name-$1"; seconds "$PYTHON" -m gan_jax.train --config="$config" \
            --workdir="$OUT/$name-$1" --compilation_cache="$2" --config.train.num_steps=1 \
            --config.train.sample_every_steps=0 --config.eval.every_steps=0; }
  read -r cold cold_cpu <<< "$(run cold "$OUT/cache-$name")"
  read -r warm warm_cpu <<< "$(run warm "$OUT/cache-$name")"
  read -r off _ <<< "$(run off off)"
  echo "| $name | $cold | $warm | $off | $cold_cpu | $warm_cpu | $load |"
done
