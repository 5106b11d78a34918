#!/usr/bin/env bash
# Wall-clock of DQN on CartPole-v1 (configs/dqn-cartpole-zoo.yaml, 50k steps) and SAC on
# Pendulum-v1 (configs/sac-pendulum-zoo.yaml, 20k steps) against Stable-Baselines3 with the
# same hyperparameters, measured back to back on this machine in one sitting. `rl` steps its env
# and computes its gradients on one core each (RAYON_NUM_THREADS=1); SB3 runs twice, with torch
# on one thread and with torch's default (one per core).
#
#   bash experiments/speed_vs_sb3_off_policy.sh [SEED]
#
# Sets up SB3 in a venv outside the repository (SB3_VENV, default ../sb3venv; torch is several GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${1:-1}"
venv="${SB3_VENV:-../sb3venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "stable-baselines3==2.9.*" "gymnasium==1.4.0"
fi
cargo build -q --release -p rl-cli
out="$(mktemp -d)"
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
for pair in "dqn dqn-cartpole-zoo" "sac sac-pendulum-zoo"; do
  set -- $pair
  algo=$1 config=$2
  start=$(date +%s.%N)
  ./target/release/rl train --config "configs/$config.yaml" --seed "$seed" --output "$out/$algo" --quiet | tee "$out/rl-$algo.txt"
  rl_s=$(seconds "$start" "$(date +%s.%N)")
  for threads in 1 default; do
    args=(--seed "$seed")
    [ "$threads" = default ] || args+=(--torch-threads "$threads")
    "$venv/bin/python" experiments/sb3_off_policy.py "$algo" "${args[@]}" | tee "$out/sb3-$algo-$threads.txt"
    sb3_s=$(grep -o 'in [0-9.]*s' "$out/sb3-$algo-$threads.txt" | head -1 | tr -dc '0-9.')
    echo "$algo: rl train (whole process, including final evaluation) ${rl_s}s; sb3 model.learn (torch threads $threads) ${sb3_s}s"
    python3 -c "import sys; print(f'$algo speed ratio sb3 (torch threads $threads) / rl: {float(sys.argv[1]) / float(sys.argv[2]):.1f}x')" "$sb3_s" "$rl_s"
  done
done
rm -rf "$out"
