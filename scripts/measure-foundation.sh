#!/usr/bin/env bash
# Foundation measurements on the CPU (Fashion-MNIST, small CNN), 3 seeds each:
#   supervised, 1,000 random labels, 2,000 steps
#   supervised vs MixMatch on the same 100 random labels, 1,500 steps each
# Results go to results/foundation/<name>-s<seed>/result.json; a summary table is printed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/scripts/setup.sh"
cd "$repo"
out=results/foundation
mkdir -p "$out/configs"
run() { # name method labels steps seed
  local cfg="$out/configs/$1-s$5.toml"
  printf 'method = "%s"\nseed = %s\ndevice = "cpu"\n[labeled]\nsize = %s\n[train]\nsteps = %s\neval_every = 100\nmedian_of = 5\n' \
    "$2" "$5" "$3" "$4" > "$cfg"
  [ -f "$out/$1-s$5/result.json" ] || ssal run --config "$cfg" --out "$out/$1-s$5"
}
for s in 0 1 2; do run sup1000 supervised 1000 2000 $s; done
for s in 0 1 2; do run sup100 supervised 100 1500 $s; run mixmatch100 mixmatch 100 1500 $s; done
"$SSAL_VENV/bin/python" - "$out" <<'PY'
import json, sys, glob, statistics as st, collections
rows = collections.defaultdict(list)
for f in sorted(glob.glob(sys.argv[1] + "/*/result.json")):
    r = json.load(open(f)); name = f.split("/")[-2].rsplit("-s", 1)[0]
    rows[name].append((r["final_accuracy"], r["wall_seconds"], r["config"]["seed"]))
print("| run | seeds | accuracy mean ± SE (%) | per seed (%) | wall time per run (s) |")
print("|---|---|---|---|---|")
for k, v in rows.items():
    acc = [a * 100 for a, _, _ in v]
    se = st.stdev(acc) / len(acc) ** 0.5 if len(acc) > 1 else float("nan")
    print(f"| {k} | {len(v)} | {st.mean(acc):.2f} ± {se:.2f} | {', '.join(f'{a:.2f}' for a in acc)} | {st.mean(w for _, w, _ in v):.0f} |")
PY
