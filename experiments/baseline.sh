#!/usr/bin/env bash
# Records or checks the baseline runs: progress.csv (timing columns dropped) and the SHA-256 of the
# final weights of configs/ppo.yaml, configs/dqn.yaml and configs/sac-pendulum-zoo.yaml (seed 1),
# in full and in the short forms the test suite replays (rllib/tests/train.rs, `baseline_*`).
#
#   bash experiments/baseline.sh record [RL_BINARY]   # writes rllib/tests/fixtures/baseline/
#   bash experiments/baseline.sh check  [RL_BINARY]   # compares with them, exit 1 on a difference
#
# The fixtures were recorded with the binary of the commit before the runtime seam and the
# per-algorithm configs; a change that alters any number must say why and re-record them.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: baseline.sh record|check [RL_BINARY]}
rl=${2:-target/release/rl}
fixtures=rllib/tests/fixtures/baseline
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name, config, extra overrides
runs=(
    "ppo|configs/ppo.yaml|"
    "dqn|configs/dqn.yaml|"
    "dqn-short|configs/dqn.yaml|stop.num_env_steps_sampled_lifetime=20000"
    "sac-pendulum-zoo|configs/sac-pendulum-zoo.yaml|"
    "sac-short|configs/sac-pendulum-zoo.yaml|stop.num_env_steps_sampled_lifetime=1500"
)

# progress.csv without the columns that measure time.
strip_timing() {
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) keep[i] = ($i !~ /^(time_|timers\/)/ && $i !~ /_per_s$/) }
        { line = ""; for (i = 1; i <= NF; i++) if (keep[i]) line = line (line == "" ? "" : ",") $i; print line }' "$1"
}

weights() {
    (cd "$1/checkpoints/final" && sha256sum policy.safetensors $(ls critics.safetensors 2>/dev/null))
}

status=0
for run in "${runs[@]}"; do
    IFS='|' read -r name config override <<<"$run"
    args=(train --config "$config" --seed 1 --quiet --output "$work/$name")
    [ -n "$override" ] && args+=(--set "$override")
    start=$SECONDS
    "$rl" "${args[@]}" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
    echo "$name: trained in $((SECONDS - start)) s"
    if [ "$mode" = record ]; then
        mkdir -p "$fixtures/$name"
        strip_timing "$work/$name/progress.csv" >"$fixtures/$name/progress.csv"
        weights "$work/$name" >"$fixtures/$name/weights.sha256"
    else
        if ! diff -q <(strip_timing "$work/$name/progress.csv") "$fixtures/$name/progress.csv" >/dev/null; then
            echo "$name: progress.csv differs from the baseline"; status=1
        fi
        if ! diff -q <(weights "$work/$name") "$fixtures/$name/weights.sha256" >/dev/null; then
            echo "$name: final weights differ from the baseline"; status=1
        fi
    fi
done
exit $status
