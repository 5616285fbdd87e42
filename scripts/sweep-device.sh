#!/usr/bin/env bash
# Runs a sweep through ssal's own local runner on a lent GPU machine that has PyTorch but no Rust
# (the `device` tool of this workplace): several jobs at once on its one GPU.
#
#   bash scripts/sweep-device.sh prepare                  # here: copy ssal + Fashion-MNIST to .device/
#   bash scripts/sweep-device.sh SWEEP.toml SLOTS LIMIT_S # there, from the repo root, .device carried
#
# There: python3 (or $SSAL_PYTHON) holds torch 2.11.0; ssal finds libtorch in its lib folder.
# Results go to .device/results/<sweep>/ (carry .device again to resume) and, without checkpoints,
# to $OUT/<sweep>.tar.gz. The sweep is stopped with SIGINT after LIMIT_S seconds; what finished is kept.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=.device

if [ "${1:-}" = prepare ]; then
  set -e
  SSAL_NO_BUILD=1 . scripts/setup.sh
  cargo build --release --bin ssal
  readelf -d target/release/ssal | grep -q libtorch_cuda.so || {
    echo "sweep-device: target/release/ssal does not link libtorch_cuda.so (CPU-only torch?)" >&2; exit 1; }
  mkdir -p "$dir/fashion-mnist"
  strip -o "$dir/ssal" target/release/ssal
  cp /usr/share/datasets/fashion-mnist/*.gz "$dir/fashion-mnist/"
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx "/$dir/" "$exclude" 2>/dev/null || echo "/$dir/" >> "$exclude"
  echo "sweep-device: $(du -sh "$dir" | cut -f1) in $dir/ (ssal from $(git rev-parse --short HEAD))"
  exit 0
fi

sweep=${1:?sweep file}; slots=${2:-8}; limit=${3:-400}
out=${OUT:-/tmp}
name=$(basename "$sweep" .toml)
data=/usr/share/datasets/fashion-mnist
if [ ! -e "$data/train-images-idx3-ubyte.gz" ]; then mkdir -p "$data" && cp "$dir"/fashion-mnist/*.gz "$data/"; fi
torch_dir=$("${SSAL_PYTHON:-python3}" -c 'import torch, os; print(os.path.dirname(torch.__file__))') || exit 1
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OMP_NUM_THREADS=2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$dir/ssal" info
devices=$(printf '0,%.0s' $(seq "$slots")); devices=${devices%,}
start=$(date +%s)
timeout -s INT -k 30 "$limit" "$dir/ssal" sweep resume "$sweep" --backend local --devices "$devices" \
  --results "$dir/results" --poll-seconds 2
echo "sweep-device: sweep resume exited $? after $(( $(date +%s) - start )) s"
"$dir/ssal" sweep status "$sweep" --results "$dir/results" | head -20
tar -czf "$out/$name.tar.gz" --exclude='*.pt' --exclude='*.ot' -C "$dir/results" "$name"
ls -la "$out"
