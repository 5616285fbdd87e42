#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the demo sweep on the embedded Fashion-MNIST:
# plan → run every job → ingest → statistics table (paired t-tests over seeds) → plots.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/scripts/setup.sh"
cd "$repo"
sweep=sweeps/fmnist-demo.toml
name=fmnist-demo
ssal sweep plan "$sweep"
# Until the sweep runner lands, run the planned jobs one after another here; finished jobs
# (those with a result.json) are skipped, so re-running resumes.
total=$(($(wc -l < "results/$name/plan.tsv") - 1))
tail -n +2 "results/$name/plan.tsv" | while IFS=$'\t' read -r index id axes; do
  dir="results/$name/jobs/$id"
  if [ -f "$dir/result.json" ]; then echo "[$((index + 1))/$total] $axes: done before"; continue; fi
  printf '[%d/%d] %s: ' "$((index + 1))" "$total" "$axes"
  ssal run --config "$dir/config.toml" --out "$dir"
done
ssal results ingest "results/$name" --db "results/$name/ssal.db"
echo
ssal report --db "results/$name/ssal.db" --baseline method=supervised
ssal plot --db "results/$name/ssal.db" --out "results/$name/plots"
