"""Stable-Baselines3 DQN on CartPole-v1 or SAC on Pendulum-v1 with the hyperparameters of
configs/dqn-cartpole-zoo.yaml and configs/sac-pendulum-zoo.yaml (rl-baselines3-zoo's).

Prints the wall-clock of `model.learn` and the final deterministic evaluation (20 episodes).
Used by speed_vs_sb3_off_policy.sh; run it inside a venv with stable-baselines3 installed.
"""
import argparse
import time

import torch
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy


def build(algo, seed):
    if algo == "dqn":
        env = make_vec_env("CartPole-v1", n_envs=1, seed=seed)
        model = DQN(
            "MlpPolicy",
            env,
            learning_rate=2.3e-3,
            batch_size=64,
            buffer_size=100_000,
            learning_starts=1000,
            gamma=0.99,
            target_update_interval=10,
            train_freq=256,
            gradient_steps=128,
            exploration_fraction=0.16,
            exploration_final_eps=0.04,
            policy_kwargs=dict(net_arch=[256, 256]),
            seed=seed,
            device="cpu",
            verbose=0,
        )
        return model, "CartPole-v1", 50_000
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, device="cpu", verbose=0)
    return model, "Pendulum-v1", 20_000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("algo", choices=["dqn", "sac"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    args = p.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    model, env_id, steps = build(args.algo, args.seed)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - t0
    eval_env = make_vec_env(env_id, n_envs=1, seed=1_000_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(f"sb3 {args.algo} {env_id} {steps} steps in {elapsed:.1f}s (torch threads {torch.get_num_threads()}); "
          f"final evaluation {mean:.2f} +- {std:.2f}")


if __name__ == "__main__":
    main()
