# Reference numbers from CleanRL's own scripts on this machine: seeds 1, 2, 3, one run at a time
# under `nice -n 19`, then each seed's mean return over its last 100 training episodes and
# mean ± population std over seeds (experiments/cleanrl_reference.py).
#
#   bash experiments/cleanrl_reference.sh [ENV_ID]      # default Acrobot-v1
#   CLEANRL_SEEDS="3" bash experiments/cleanrl_reference.sh HalfCheetah-v4
#
# Classic control runs ppo.py of the `cleanrl` package on PyPI, 0.4.8, for 500k env steps, in an
# optional venv outside the repository (CLEANRL_VENV, default ../cleanrlvenv2; created here if
# missing, torch is several GiB). That ppo.py is written against the old `gym` API
# (gym.wrappers.Monitor, env.seed, stable-baselines3 1.x VecEnv), so it cannot run on gymnasium;
# it runs on gym 0.21.0 + stable-baselines3 1.8.0, whose classic-control dynamics are the same.
# gym 0.21.0's metadata needs pip < 24.1 and setuptools < 66 to install. Its default learning
# rate is 3e-4; the run passes 2.5e-4 so that every hyperparameter equals today's CleanRL ppo.py
# defaults (4 envs x 128 steps, 4 minibatches, 4 epochs, annealed lr, GAE 0.95, gamma 0.99,
# clip 0.2 with clipped value loss, ent 0.01, vf 0.5, max grad norm 0.5).
#
# MuJoCo ids (HalfCheetah, Hopper, Walker2d, InvertedPendulum, ...) run ppo_continuous_action.py
# of `cleanrl` 1.2.0 from PyPI with its own defaults (the settings of configs/ppo-mujoco.yaml) for
# 1M env steps, on CPU, in CLEANRL_MUJOCO_VENV (default ../cleanrl-mujoco-venv): gymnasium 0.29.1
# and mujoco 2.3.7, the API that script is written for. The wheel declares Python < 3.11, which
# its code does not need, so it is installed without that check.
#
# Run directories and logs go to CLEANRL_WORK (default /tmp/cleanrl-work), outside the
# repository. Each seed's wall-clock is appended to wallclock.tsv there, so several seeds may run
# as separate invocations (CLEANRL_SEEDS).
set -euo pipefail
cd "$(dirname "$0")/.."
env_id="${1:-Acrobot-v1}"
work="${CLEANRL_WORK:-/tmp/cleanrl-work}"
seeds="${CLEANRL_SEEDS:-1 2 3}"
script="$(pwd)/experiments/cleanrl_reference.py"
case "$env_id" in
  HalfCheetah-* | Hopper-* | Walker2d-* | InvertedPendulum-* | InvertedDoublePendulum-* | Ant-* | \
    Humanoid-* | Swimmer-* | Reacher-* | Pusher-*) kind=mujoco ;;
  *) kind=classic ;;
esac
if [ "$kind" = mujoco ]; then
  venv="${CLEANRL_MUJOCO_VENV:-../cleanrl-mujoco-venv}"
  steps="${CLEANRL_STEPS:-1000000}"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "torch==2.15.0" "gymnasium[mujoco]==0.29.1" "mujoco==2.3.7" \
      "numpy==1.26.4" "tensorboard==2.21.0"
    wheel_dir="$(mktemp -d)"
    "$venv/bin/pip" download -q cleanrl==1.2.0 --no-deps --python-version 3.10 --only-binary=:all: -d "$wheel_dir"
    "$venv/bin/pip" install -q --no-deps --ignore-requires-python "$wheel_dir"/cleanrl-1.2.0-*.whl
  fi
else
  venv="${CLEANRL_VENV:-../cleanrlvenv2}"
  steps="${CLEANRL_STEPS:-500000}"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pip==24.0" "setuptools==65.5.0" "wheel==0.38.4"
    "$venv/bin/pip" install -q --no-build-isolation "gym==0.21.0" "numpy==1.26.4"
    "$venv/bin/pip" install -q "gym==0.21.0" "numpy==1.26.4" "torch==2.15.0" \
      "tensorboard==2.21.0" "stable-baselines3==1.8.0"
    "$venv/bin/pip" install -q --no-deps "cleanrl==0.4.8"
  fi
fi
venv="$(cd "$venv" && pwd)"
out="$work/$env_id"
mkdir -p "$out"
cd "$out"
touch wallclock.tsv
for seed in $seeds; do
  start=$(date +%s.%N)
  if [ "$kind" = mujoco ]; then
    nice -n 19 "$venv/bin/python" -m cleanrl.ppo_continuous_action --env-id "$env_id" --seed "$seed" \
      --total-timesteps "$steps" --cuda False > "log_seed$seed.txt" 2>&1
  else
    nice -n 19 "$venv/bin/python" -m cleanrl.ppo --gym-id "$env_id" --seed "$seed" \
      --total-timesteps "$steps" --learning-rate 2.5e-4 --prod-mode False --capture-video False \
      > "log_seed$seed.txt" 2>&1
  fi
  secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
  printf '%s\t%s\n' "$seed" "$secs" >> wallclock.tsv
  echo "seed $seed: ${secs}s"
done
"$venv/bin/python" "$script" "$out" --env-id "$env_id"
