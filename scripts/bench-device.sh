#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md (those of `bash scripts/bench.sh gpu`) on a GPU machine that
# has PyTorch but no Rust: it runs a bench executable built here and carried there in .device/.
#
#   bash scripts/bench-device.sh prepare   # here (cargo, libtorch with CUDA): build, copy to .device/
#   bash scripts/bench-device.sh           # there, from the repo root, with .device/ carried along
#
# There: `python3` (or $SSAL_PYTHON) must hold torch (the same version as the build's, 2.11.0),
# NumPy and scikit-learn; the bench finds libtorch in that torch's lib folder. No data set is
# needed (the MixMatch rows use random CIFAR-10-shaped images, diversity sampling a random matrix).
# Output goes to the terminal and to $OUT/gpu-bench.log (OUT defaults to /tmp); the Markdown rows
# are the lines starting with '|'. About 3-4 minutes on an H100 with 16 cores.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=.device

if [ "${1:-run}" = prepare ]; then
  set -e
  SSAL_NO_BUILD=1 . scripts/setup.sh
  if [ ! -e "$LIBTORCH/lib/libtorch_cuda.so" ]; then
    echo "bench-device: $LIBTORCH/lib has no libtorch_cuda.so: a CPU-only torch cannot build the GPU bench" >&2
    exit 1
  fi
  exe=$(cargo bench --no-run --bench hotpaths 2>&1 | tee /dev/stderr | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
  [ -x "$exe" ] || { echo "bench-device: no bench executable found in cargo's output" >&2; exit 1; }
  if ! readelf -d "$exe" | grep -q 'libtorch_cuda.so'; then
    echo "bench-device: $exe does not link libtorch_cuda.so, so CUDA would read as unavailable (see build.rs)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  strip -o "$dir/hotpaths" "$exe"
  { echo "built from commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches build.rs Cargo.toml Cargo.lock || echo '+changes')"
    echo "on $(date -u +%Y-%m-%dT%H:%MZ), torch $("$SSAL_VENV/bin/python" -c 'import torch; print(torch.__version__)')"; } > "$dir/BUILD"
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx "/$dir/" "$exclude" 2>/dev/null || echo "/$dir/" >> "$exclude"
  echo "bench-device: $(du -sh "$dir" | cut -f1) in $dir/ ($(cat "$dir/BUILD" | head -1)); carry \"$dir\" and run: bash scripts/bench-device.sh"
  exit 0
fi

out=${OUT:-/tmp}
mkdir -p "$out"
log=$out/gpu-bench.log
bin=$dir/hotpaths
if [ ! -x "$bin" ]; then
  echo "bench-device: no $bin: run 'bash scripts/bench-device.sh prepare' where cargo is, and carry $dir" | tee "$log" >&2
  exit 1
fi
export SSAL_PYTHON=${SSAL_PYTHON:-python3}
export SSAL_REFERENCE=$repo/benches/reference/reference.py
export PYTHONUNBUFFERED=1
torch_dir=$("$SSAL_PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))') || {
  echo "bench-device: $SSAL_PYTHON cannot import torch" | tee "$log" >&2
  exit 1
}
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# One section under a time limit, so that a hang costs that section only.
section() {
  local limit=$1
  shift
  echo "== hotpaths $* (limit ${limit} s), $(date -u +%H:%M:%S)"
  local start=$SECONDS
  timeout "$limit" "$bin" "$@"
  local rc=$?
  echo "== hotpaths $*: exit $rc after $((SECONDS - start)) s"
}

{
  echo "== GPU benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ), repo at $(git rev-parse --short HEAD 2>/dev/null || echo '?'); bench $(head -1 $dir/BUILD 2>/dev/null)"
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  echo "host: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB"
  "$SSAL_PYTHON" -c 'import sys, torch, numpy, sklearn; print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), numpy {numpy.__version__}, scikit-learn {sklearn.__version__}")'
  echo "bench links: $(ldd "$bin" | awk '/libtorch_cuda|libtorch_cpu|libc10\.so/ {print $1 " => " $3}' | tr '\n' ' ')"
  if ldd "$bin" | grep -q 'not found'; then
    ldd "$bin" | grep 'not found'
  fi
  section 240 mixmatch wrn28_2 cuda
  section 330 diversity cuda
  echo "== done, $(date -u +%H:%M:%S)"
} 2>&1 | tee "$log"
rows=$(grep -c '^|' "$log")
echo "bench-device: $rows table row(s) of 3 in $log"
[ "$rows" -eq 3 ]
