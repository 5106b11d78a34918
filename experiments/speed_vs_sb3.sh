#!/usr/bin/env bash
# Wall-clock of `rl train` against Stable-Baselines3 with the same hyperparameters, measured back
# to back on this machine in one sitting:
#   ppo: CartPole-v1 PPO, configs/ppo.yaml (CleanRL's ppo.py settings), 500k steps;
#   dqn: CartPole-v1 DQN, configs/dqn-cartpole-zoo.yaml (rl-baselines3-zoo's), 50k steps;
#   sac: Pendulum-v1 SAC, configs/sac-pendulum-zoo.yaml (rl-baselines3-zoo's), 20k steps.
# `rl`'s learner computes on one core (RAYON_NUM_THREADS=1); SB3 runs twice per algorithm, with
# torch on one thread and with torch's default (one per core).
#
#   bash experiments/speed_vs_sb3.sh [--seed N] [ppo] [dqn] [sac]     (default: all three)
#
# Sets up SB3 in a venv outside the repository (SB3_VENV, default ../sb3venv; torch is several GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
seed=1
if [ "${1:-}" = --seed ]; then
  seed="$2"
  shift 2
fi
algos=("$@")
[ ${#algos[@]} -gt 0 ] || algos=(ppo dqn sac)
declare -A config=([ppo]=ppo [dqn]=dqn-cartpole-zoo [sac]=sac-pendulum-zoo)
for algo in "${algos[@]}"; do
  [ -n "${config[$algo]:-}" ] || { echo "unknown algorithm $algo (ppo, dqn or sac)" >&2; exit 2; }
done
venv="${SB3_VENV:-../sb3venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "stable-baselines3==2.9.*" "gymnasium==1.4.0"
fi
cargo build -q --release -p rl-cli
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
for algo in "${algos[@]}"; do
  start=$(date +%s.%N)
  ./target/release/rl train --config "configs/${config[$algo]}.yaml" --seed "$seed" --output "$out/$algo" --quiet \
    | tee "$out/rl-$algo.txt"
  rl_s=$(seconds "$start" "$(date +%s.%N)")
  for threads in 1 default; do
    args=(--seed "$seed")
    [ "$threads" = default ] || args+=(--torch-threads "$threads")
    "$venv/bin/python" experiments/sb3.py "$algo" "${args[@]}" | tee "$out/sb3-$algo-$threads.txt"
    sb3_s=$(grep -o 'in [0-9.]*s' "$out/sb3-$algo-$threads.txt" | head -1 | tr -dc '0-9.')
    echo "$algo: rl train (whole process, including final evaluation) ${rl_s}s; sb3 model.learn (torch threads $threads) ${sb3_s}s"
    python3 -c "import sys; print(f'$algo speed ratio sb3 (torch threads $threads) / rl: {float(sys.argv[1]) / float(sys.argv[2]):.1f}x')" "$sb3_s" "$rl_s"
  done
done
