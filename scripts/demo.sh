#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on the embedded Fashion-MNIST.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/scripts/setup.sh"
cd "$repo"
ssal run --config sweeps/fmnist-quick.toml --out results/quick
