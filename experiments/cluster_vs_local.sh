#!/usr/bin/env bash
# Wall-clock of configs/ppo.yaml in one process against the same run on a head and two worker
# nodes on this machine (127.0.0.1), alternating, REPS times each; prints each time and the ratio
# of the medians. The learning curves must match (progress.csv outside its timing columns).
#
#   bash experiments/cluster_vs_local.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
cargo build --release --quiet --bin rl
RL=target/release/rl
WORK=$(mktemp -d)
export RL_SESSION_DIR=$WORK/session
trap '$RL stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
$RL start --head --port 0 --num-cpus 0 --dashboard-port 0 >/dev/null
ADDR=$(cat "$RL_SESSION_DIR/head_address")
$RL start --address "$ADDR" --num-cpus 2 >/dev/null
$RL start --address "$ADDR" --num-cpus 2 >/dev/null
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
local_s=(); cluster_s=()
for i in $(seq "$REPS"); do
  local_s+=("$(seconds $RL train --config configs/ppo.yaml --output "$WORK/local$i" --quiet)")
  cluster_s+=("$(seconds $RL train --config configs/ppo.yaml --address "$ADDR" --output "$WORK/cluster$i" --quiet)")
  echo "rep $i: local ${local_s[-1]} s, head + 2 nodes ${cluster_s[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ml=$(median "${local_s[@]}"); mc=$(median "${cluster_s[@]}")
echo "median: local $ml s, head + 2 nodes $mc s, ratio $(echo "scale=2; $mc / $ml" | bc)"
python3 - "$WORK/local1" "$WORK/cluster1" <<'PY'
import csv, sys
timing = {"time_this_iter_s", "time_total_s", "timers/sample_s", "timers/learn_s", "num_env_steps_sampled_per_s"}
a, b = (list(csv.DictReader(open(d + "/progress.csv"))) for d in sys.argv[1:])
diff = sum(x[k] != y[k] for x, y in zip(a, b) for k in x if k not in timing) + abs(len(a) - len(b))
print(f"progress.csv: {len(a)} rows, {diff} differing cells outside the timing columns")
PY
