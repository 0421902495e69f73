#!/usr/bin/env bash
# Encoding benchmark: rrra (`examples/throughput.rs`, burn flex CPU unless BACKEND says
# otherwise) vs PyTorch + transformers fp32 (`torch_encode.py`) on the same SciFact
# documents, batch, max_len and thread count, back to back; prints both and the ratio.
#
# usage: encode_vs_torch.sh [DOCS=96] [BATCH=32] [MAX_LEN=256] [THREADS=2] [BACKEND=cpu] [DEVICE=cpu]
# Needs $PYTHON (default python3) with torch and transformers, and the model folder in
# $RRRA_MODEL_CACHE (fetched there by the rrra side when missing).
set -euo pipefail
docs=${1:-96} batch=${2:-32} max_len=${3:-256} threads=${4:-2} backend=${5:-cpu} device=${6:-cpu}
here=$(cd "$(dirname "$0")" && pwd)
cache=${RRRA_MODEL_CACHE:-${TMPDIR:-/tmp}/rrra-encoder-models}
export RRRA_MODEL_CACHE=$cache RAYON_NUM_THREADS=$threads
cargo build --quiet --example throughput -p rrra-encoder
rrra=$("$here/../../../target/debug/examples/throughput" "$backend" "$docs" "$batch" "$max_len")
echo "$rrra"
model=$(ls -d "$cache"/*/ | head -1)
torch=$("${PYTHON:-python3}" "$here/torch_encode.py" "$model" "$docs" "$batch" "$max_len" "$threads" "$device")
echo "$torch"
rate() { sed -E 's/.* ([0-9.]+) docs\/s.*/\1/' <<<"$1"; }
awk -v a="$(rate "$rrra")" -v b="$(rate "$torch")" \
  'BEGIN { printf "ratio rrra/torch: %.2fx docs/s\n", a / b }'
