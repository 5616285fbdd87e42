#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The Slurm integration test (tests/slurm_cluster.rs) starts a single-node cluster from these.
export SSAL_APT_EXTRA="slurmctld slurmd slurm-client munge ${SSAL_APT_EXTRA:-}"
SSAL_NO_BUILD=1 . "$repo/scripts/setup.sh"
cd "$repo"
# One build profile for the binary, the benchmarks and the tests: libtorch's C++ glue is compiled once.
cargo test --release --no-fail-fast
# The analysis-only build (no `torch` feature: sweeps, store, statistics, reports, plots, CPU
# selection) builds and passes its tests with no libtorch in sight — LIBTORCH unset, its own
# target directory, so nothing of the torch build is reused.
env -u LIBTORCH -u LIBTORCH_CXX11_ABI -u LIBTORCH_USE_PYTORCH CARGO_TARGET_DIR="$repo/target/analysis-only" \
    cargo test --release --no-default-features --no-fail-fast
# The benchmarks are not run here (scripts/bench.sh does), but they must keep compiling.
cargo bench --no-run --quiet
"$SSAL_VENV/bin/python" -m py_compile benches/reference/reference.py
