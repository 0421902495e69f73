#!/usr/bin/env bash
# Training benchmark: rrra (burn flex CPU) vs sentence-transformers (PyTorch fp32 CPU) on the
# same SciFact triplets, batch shape and thread count, back to back; prints both and the
# ratios (rrra / sentence-transformers) of examples/s and of peak RSS.
#
# usage: train_vs_st.sh [STEPS=4] [BATCH=32] [MAX_LEN=128] [THREADS=2]
# Needs $PYTHON (default python3) with torch and sentence-transformers, and the model folder
# in $RRRA_MODEL_CACHE (fetched there by the rrra side when missing).
set -euo pipefail
steps=${1:-4} batch=${2:-32} max_len=${3:-128} threads=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
cache=${RRRA_MODEL_CACHE:-${TMPDIR:-/tmp}/rrra-encoder-models}
export RRRA_MODEL_CACHE=$cache RAYON_NUM_THREADS=$threads
cargo build --quiet --example train_throughput -p rrra-encoder
rrra=$("$here/../../../target/debug/examples/train_throughput" "$steps" "$batch" "$max_len")
echo "$rrra"
model=$(ls -d "$cache"/*/ | head -1)
st=$("${PYTHON:-python3}" "$here/st_train.py" "$model" "$steps" "$batch" "$max_len" "$threads")
echo "$st"
field() { sed -E "s/.*: ([0-9.]+) examples\/s, peak RSS ([0-9]+) MiB.*/\\$1/" <<<"$2"; }
awk -v a="$(field 1 "$rrra")" -v b="$(field 1 "$st")" -v c="$(field 2 "$rrra")" -v d="$(field 2 "$st")" \
  'BEGIN { printf "ratio rrra/sentence-transformers: examples/s %.2fx, peak RSS %.2fx\n", a / b, c / d }'
