#!/usr/bin/env bash
# Analogue of the paper's Fig. 4 on Fashion-MNIST: initial sets of 100 images chosen at random and
# by diversity sampling with T in {0, 0.25, 0.5, 1} on RotNet embeddings, 10 seeds each.
# One RotNet (rotnet.seed = 0, cached) serves every run; train.steps = 0 selects and measures only.
# Prints class-distribution distance (Eq. 6) and diversity (mean pairwise L2 distance in the RotNet
# embedding), mean ± SE, and Welch t-tests against random.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/scripts/setup.sh"
cd "$repo"
out=results/fig4
mkdir -p "$out/configs"
for seed in $(seq 0 9); do
  for strat in random t0 t0.25 t0.5 t1; do
    cfg="$out/configs/$strat-s$seed.toml"
    if [ "$strat" = random ]; then init='strategy = "random"'; else init="strategy = \"diversity\"
temperature = ${strat#t}"; fi
    cat > "$cfg" <<TOML
seed = $seed
device = "cpu"
[labeled]
size = ${SSAL_FIG4_SIZE:-100}
[init]
$init
embedding = "rotnet"
[rotnet]
seed = 0
[train]
steps = 0
TOML
    [ -f "$out/$strat-s$seed/result.json" ] || ssal run --config "$cfg" --out "$out/$strat-s$seed" >/dev/null
  done
done
"$SSAL_VENV/bin/python" - "$out" <<'PY'
import json, sys, glob, collections, numpy as np
from scipy import stats
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(sys.argv[1] + "/*/result.json"):
    r = json.load(open(f)); name = f.split("/")[-2].rsplit("-s", 1)[0]; c = r["cycles"][0]
    rows[name]["class_distance"].append(c["class_distance"]); rows[name]["diversity"].append(c["diversity"])
print("| initial set | n | class distance mean ± SE | p vs random (Welch) | diversity mean ± SE | p vs random (Welch) |")
print("|---|---|---|---|---|---|")
for name in ["random", "t0", "t0.25", "t0.5", "t1"]:
    cells = []
    for m in ["class_distance", "diversity"]:
        v = np.array(rows[name][m]); base = np.array(rows["random"][m])
        p = "—" if name == "random" else f"{stats.ttest_ind(v, base, equal_var=False).pvalue:.2g}"
        cells += [f"{v.mean():.4f} ± {stats.sem(v):.4f}", p]
    label = "random" if name == "random" else f"diversity T = {name[1:]}"
    print(f"| {label} | {len(rows[name]['diversity'])} | " + " | ".join(cells) + " |")
PY
