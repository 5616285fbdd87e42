#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the demo sweep on the embedded Fashion-MNIST:
# plan → run every job (local backend) → ingest → statistics tables (Welch t-tests against random) → plot.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/scripts/setup.sh"
cd "$repo"
sweep=sweeps/fmnist-demo.toml
name=fmnist-demo
results=${SSAL_RESULTS:-results}   # results root (the benchmark times the demo in a fresh one)
# Runs every job without a complete result on this machine, one at a time, with a progress bar;
# each job's output goes to $results/$name/jobs/<id>/log.txt. Re-running resumes.
ssal sweep resume "$sweep" --backend local --results "$results"
ssal results ingest "$results/$name" --db "$results/$name/ssal.db"
echo
# Welch's test: two selection methods of one seed are independent draws, not paired samples.
echo "Class-distribution distance of the initial sets (Eq. 6; lower = more balanced):"
ssal report --db "$results/$name/ssal.db" --metric class-distance --baseline init.strategy=random --test welch
echo
echo "Diversity of the initial sets (mean pairwise L2 distance in the RotNet embedding; higher = more diverse):"
ssal report --db "$results/$name/ssal.db" --metric diversity --baseline init.strategy=random --test welch
ssal plot --db "$results/$name/ssal.db" --out "$results/$name/plots"
