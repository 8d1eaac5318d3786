#!/usr/bin/env bash
# Sweeps of the flow-matching and EDM samplers with the exact denoiser, over sampler seeds
# 0–4, summarised as mean ± s.d. per sampler and network-call count (the README's tables).
#   scripts/sweep_new_processes.sh [DIFFC] [COUNT]
# DIFFC defaults to target/release/diffc (build it with `cargo build --release`), COUNT to 1000.
set -euo pipefail
diffc=${1:-target/release/diffc}
count=${2:-1000}
out=$(mktemp -d)
run() { # name spec data samplers steps
  for seed in 0 1 2 3 4; do
    "$diffc" sweep "$2" --data "$3" --samplers "$4" --steps "$5" --count "$count" --seed "$seed" \
      --out "$out/$1-$seed" > /dev/null 2>&1
  done
}
# Flow matching: Euler at 2/5/10/50 steps; the midpoint rule at 1/5/25 steps (2/10/50 calls).
run fm_euler specs/flow_matching.diff moons euler 2,5,10,50
run fm_midpoint specs/flow_matching.diff moons midpoint 1,5,25
# EDM: Heun (2N − 1 calls) against Euler at equal calls: 5, 11, 21, 51.
run edm_heun specs/edm.diff moons heun 3,6,11,26
run edm_euler specs/edm.diff moons euler 5,11,21,51
python3 - "$out" <<'PY'
import json, os, statistics, sys
root = sys.argv[1]
rows = {}
for d in sorted(os.listdir(root)):
    name = d.rsplit("-", 1)[0]
    with open(os.path.join(root, d, "sweep.json")) as f:
        j = json.load(f)
    for p in j["points"]:
        key = (j["process"], p["sampler"], p["network_calls"])
        rows.setdefault(key, []).append(p["scores"])
print(f"{'process':14} {'sampler':9} {'calls':>5}  {'inside':>15}  {'mean_nearest':>17}  {'energy':>17}")
for (proc, s, calls), sc in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
    def ms(k):
        v = [x[k] for x in sc]
        return f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}"
    print(f"{proc:14} {s:9} {calls:5}  {ms('inside'):>15}  {ms('mean_nearest'):>17}  {ms('energy'):>17}")
PY
rm -rf "$out"
