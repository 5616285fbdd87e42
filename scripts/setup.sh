#!/usr/bin/env bash
# Installs everything ssal needs on a fresh Debian machine, idempotently, then builds it.
# Run it (`bash scripts/setup.sh`); other scripts source it. The built binary,
# target/release/ssal, finds libtorch through an embedded rpath: no LD_LIBRARY_PATH needed.
#   SSAL_CACHE      where the torch venv lives (default ~/.cache/ssal), reused across clones
#   SSAL_APT_EXTRA  extra Debian packages (e.g. "slurm-wlm munge" for the Slurm tests)
#   SSAL_NO_BUILD=1 skip `cargo build --release`
set -euo pipefail
TORCH_VERSION=2.11.0   # pinned together with tch = "=0.24.0" in Cargo.toml
NUMPY_VERSION=2.4.6     # benchmark references only
SKLEARN_VERSION=1.9.1
SSAL_CACHE=${SSAL_CACHE:-$HOME/.cache/ssal}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# 1. Debian packages, installed only when missing.
want=(dataset-fashion-mnist python3-venv ${SSAL_APT_EXTRA:-})
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. A venv with torch, cached outside the checkout.
venv="$SSAL_CACHE/venv"
if ! "$venv/bin/python" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "creating $venv with torch==$TORCH_VERSION (about 4.6 GB, once)"
  mkdir -p "$SSAL_CACHE"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "torch==$TORCH_VERSION"
fi
# NumPy and scikit-learn: the Python references of the benchmarks (benches/reference/).
if ! "$venv/bin/python" -c "import numpy, sklearn" 2>/dev/null; then
  log "adding numpy and scikit-learn to $venv"
  "$venv/bin/pip" install -q "numpy==$NUMPY_VERSION" "scikit-learn==$SKLEARN_VERSION"
fi

# 3. Point the build at it; build.rs embeds an rpath to $LIBTORCH/lib.
export LIBTORCH="$("$venv/bin/python" -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parent)')"
export LIBTORCH_CXX11_ABI=1
export SSAL_VENV="$venv"
export PATH="$repo/target/release:$PATH"
if [ "${SSAL_NO_BUILD:-0}" != 1 ]; then
  log "building ssal (release)"
  (cd "$repo" && cargo build --release --quiet)
fi
log "ready: LIBTORCH=$LIBTORCH"
