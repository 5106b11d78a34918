#!/usr/bin/env bash
# Wall-clock of the 500k-step CartPole PPO run (configs/ppo.yaml) against Stable-Baselines3 PPO
# with the same hyperparameters, measured back to back on this machine.
#
#   bash experiments/speed_vs_sb3.sh [SEED]
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
cargo build -q --release -p rllib
out="$(mktemp -d)"
start=$(date +%s.%N)
./target/release/rl train --config configs/ppo.yaml --seed "$seed" --output "$out/run" --quiet | tee "$out/rl.txt"
rl_s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
"$venv/bin/python" experiments/sb3_ppo_cartpole.py --seed "$seed" | tee "$out/sb3.txt"
sb3_s=$(grep -o 'in [0-9.]*s' "$out/sb3.txt" | head -1 | tr -dc '0-9.')
echo "rl train (whole process, including final evaluation): ${rl_s}s"
echo "sb3 model.learn: ${sb3_s}s"
python3 -c "import sys; print(f'speed ratio sb3 / rl: {float(sys.argv[1]) / float(sys.argv[2]):.1f}x')" "$sb3_s" "$rl_s"
rm -rf "$out"
