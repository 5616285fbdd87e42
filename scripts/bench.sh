#!/usr/bin/env bash
# Runs ssal's benchmarks, each against a reference measured in the same run on this machine
# (Python references in benches/reference/, run in the project's venv), and prints Markdown rows.
# With every section (the default), the table in docs/benchmarks.md between the bench-table
# markers is replaced, stamped with the machine, the command and the date.
#
#   bash scripts/bench.sh                    # all sections (about 25 min on a 2-core CPU)
#   bash scripts/bench.sh diversity store    # some of: planner diversity prune consistency mixmatch store e2e
#   bash scripts/bench.sh gpu                # the GPU rows (WRN-28-2 MixMatch step, diversity sampling
#                                            # on the device): needs a CUDA GPU, so not part of "all";
#                                            # on a GPU machine without Rust, see scripts/bench-device.sh
#
# Run it on an otherwise idle machine: the ratios are only as good as the quiet around them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/scripts/setup.sh"
cd "$repo"
export SSAL_PYTHON="$SSAL_VENV/bin/python"
all="planner diversity prune consistency mixmatch store e2e"
sections=${*:-$all}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT

hotpath() { cargo bench --quiet --bench hotpaths -- "$@" | grep '^|' | tee -a "$rows"; }

# Sums the time split of every result.json under $1 and prints one table row named $2 with the
# wall time $3 (seconds) and the target text $4.
split_row() {
  "$SSAL_PYTHON" - "$@" <<'EOF' | tee -a "$rows"
import json, pathlib, sys
root, name, wall, target = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
parts = {"embed_seconds": 0.0, "train_seconds": 0.0, "query_seconds": 0.0, "eval_seconds": 0.0}
runs = 0
for f in pathlib.Path(root).rglob("result.json"):
    runs += 1
    for c in json.loads(f.read_text())["cycles"]:
        for k in parts:
            parts[k] += c.get(k, 0.0)
rest = wall - sum(parts.values())
print(f"| {name} | {wall:.1f} s | — | — | {target} | {runs} run(s): embedding {parts['embed_seconds']:.1f} s · "
      f"training {parts['train_seconds']:.1f} s · querying {parts['query_seconds']:.2f} s · "
      f"evaluation {parts['eval_seconds']:.1f} s · rest (start-up, data loading, ingest, report, plots) {rest:.1f} s |")
EOF
}

seconds_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

end_to_end() {
  local tmp start wall
  tmp=$(mktemp -d)
  start=$(date +%s%N)
  SSAL_RESULTS="$tmp" SSAL_NO_BUILD=1 bash scripts/demo.sh > "$tmp/demo.log" 2>&1 ||
    { cat "$tmp/demo.log" >&2; exit 1; }
  wall=$(seconds_since "$start")
  local verdict="< 600 s: met"
  awk "BEGIN { exit !($wall < 600) }" || verdict="< 600 s: **not met**"
  split_row "$tmp/fmnist-demo" "README demo (\`bash scripts/demo.sh\`, set-up already done)" "$wall" "$verdict"
  # One Fashion-MNIST AL run: the paper's method (job "consistency_embedding", seed 0) of fmnist-al.
  ssal sweep plan sweeps/fmnist-al.toml --results "$tmp" > /dev/null
  local id
  id=$(awk -F'\t' '/consistency_embedding/ && /\[seed=0,/ {print $2}' "$tmp/fmnist-al/plan.tsv")
  if [ -z "$id" ]; then
    echo "bench e2e: no fmnist-al job with strategy consistency_embedding and seed 0 in $tmp/fmnist-al/plan.tsv" >&2
    exit 1
  fi
  start=$(date +%s%N)
  ssal run --config "$tmp/fmnist-al/jobs/$id/config.toml" --out "$tmp/al-run" > "$tmp/al.log" 2>&1 ||
    { cat "$tmp/al.log" >&2; exit 1; }
  wall=$(seconds_since "$start")
  split_row "$tmp/al-run" "one Fashion-MNIST AL run (fmnist-al, paper's method, seed 0: 100 + 50 + 50 + 100 labels)" "$wall" "—"
  rm -rf "$tmp"
}

for s in $sections; do
  case $s in
    planner) cargo bench --quiet --bench planner | grep '^|' | tee -a "$rows" ;;
    # prune: pruned vs unpruned diversity sampling (issue 20) on a Gaussian mixture (50k, 200k, 1M × 64),
    # Fashion-MNIST RotNet and small-CNN features and the uniform 50k × 512 matrix (about 8 min).
    diversity | prune | mixmatch | store) hotpath "$s" ;;
    consistency)
      hotpath consistency small_cnn 10000
      # WRN-28-2 over 10,000 × 51 views is about an hour on 2 CPU cores: a 200-image pool here.
      hotpath consistency wrn28_2 200
      ;;
    e2e) end_to_end ;;
    gpu)
      hotpath mixmatch wrn28_2 cuda
      hotpath diversity cuda
      ;;
    *) echo "unknown section $s (sections: $all gpu)" >&2; exit 2 ;;
  esac
done

if [ "$sections" = "$all" ]; then
  table=$(mktemp)
  {
    echo "<!-- bench-table:begin (written by scripts/bench.sh) -->"
    echo "Measured $(date -u +%Y-%m-%d) with \`bash scripts/bench.sh\` at commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
    echo "on $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB,"
    echo "$( [ -e /dev/nvidia0 ] && echo 'with a GPU' || echo 'no GPU'), torch $("$SSAL_PYTHON" -c 'import torch; print(torch.__version__)'), numpy $("$SSAL_PYTHON" -c 'import numpy; print(numpy.__version__)')."
    echo
    echo "| benchmark | ssal | reference (same run) | speed-up vs reference | target | notes |"
    echo "|---|---:|---:|---:|---|---|"
    cat "$rows"
    echo "<!-- bench-table:end -->"
  } > "$table"
  "$SSAL_PYTHON" - docs/benchmarks.md "$table" <<'EOF'
import re, sys
doc, table = open(sys.argv[1]).read(), open(sys.argv[2]).read().strip()
pattern = re.compile(r"<!-- bench-table:begin.*?<!-- bench-table:end -->", re.S)
if not pattern.search(doc):
    sys.exit(f"{sys.argv[1]}: no bench-table markers")
open(sys.argv[1], "w").write(pattern.sub(lambda _: table, doc))
EOF
  rm -f "$table"
  echo "wrote docs/benchmarks.md"
fi
