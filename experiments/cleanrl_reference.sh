#!/usr/bin/env bash
# Reference numbers from CleanRL's own ppo.py (the `cleanrl` package on PyPI, 0.4.8) on this
# machine: seeds 1, 2, 3 for 500k env steps, one run at a time under `nice -n 19`, then prints
# each seed's mean return over its last 100 training episodes and mean ± population std over seeds
# (experiments/cleanrl_reference.py).
#
#   bash experiments/cleanrl_reference.sh [ENV_ID]      # default Acrobot-v1
#
# Needs an optional Python venv outside the repository (CLEANRL_VENV, default ../cleanrlvenv2;
# created here if missing, torch is several GiB). PyPI's cleanrl 0.4.8 ppo.py is written against
# the old `gym` API (gym.wrappers.Monitor, env.seed, stable-baselines3 1.x VecEnv), so it cannot run
# on gymnasium; it runs on gym 0.21.0 + stable-baselines3 1.8.0, whose classic-control dynamics are
# the same. gym 0.21.0's metadata needs pip < 24.1 and setuptools < 66 to install.
# Its default learning rate is 3e-4; the run passes 2.5e-4 so that every hyperparameter equals
# today's CleanRL ppo.py defaults (4 envs x 128 steps, 4 minibatches, 4 epochs, annealed lr, GAE
# 0.95, gamma 0.99, clip 0.2 with clipped value loss, ent 0.01, vf 0.5, max grad norm 0.5).
# Run directories and logs go to CLEANRL_WORK (default /tmp/cleanrl-work), outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
env_id="${1:-Acrobot-v1}"
venv="${CLEANRL_VENV:-../cleanrlvenv2}"
work="${CLEANRL_WORK:-/tmp/cleanrl-work}"
steps="${CLEANRL_STEPS:-500000}"
script="$(pwd)/experiments/cleanrl_reference.py"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "pip==24.0" "setuptools==65.5.0" "wheel==0.38.4"
  "$venv/bin/pip" install -q --no-build-isolation "gym==0.21.0" "numpy==1.26.4"
  "$venv/bin/pip" install -q "gym==0.21.0" "numpy==1.26.4" "torch==2.15.0" \
    "tensorboard==2.21.0" "stable-baselines3==1.8.0"
  "$venv/bin/pip" install -q --no-deps "cleanrl==0.4.8"
fi
venv="$(cd "$venv" && pwd)"
out="$work/$env_id"
mkdir -p "$out"
cd "$out"
: > wallclock.tsv
for seed in 1 2 3; do
  start=$(date +%s.%N)
  nice -n 19 "$venv/bin/python" -m cleanrl.ppo --gym-id "$env_id" --seed "$seed" \
    --total-timesteps "$steps" --learning-rate 2.5e-4 --prod-mode False --capture-video False \
    > "log_seed$seed.txt" 2>&1
  secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
  printf '%s\t%s\n' "$seed" "$secs" >> wallclock.tsv
  echo "seed $seed: ${secs}s"
done
"$venv/bin/python" "$script" "$out" --env-id "$env_id"
