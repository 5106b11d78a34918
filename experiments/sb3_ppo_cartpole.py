"""Stable-Baselines3 PPO on CartPole-v1 with the hyperparameters of configs/ppo.yaml (CleanRL's ppo.py).

Prints the wall-clock of `model.learn` and the final deterministic evaluation (20 episodes).
Used by speed_vs_sb3.sh; run it inside a venv with `pip install stable-baselines3==2.9.* gymnasium==1.4.0`.
"""
import argparse
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy


def linear(start):
    return lambda progress_remaining: progress_remaining * start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=500_000)
    args = p.parse_args()
    env = make_vec_env("CartPole-v1", n_envs=4, seed=args.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=128,
        batch_size=128,
        n_epochs=4,
        learning_rate=linear(2.5e-4),
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                           optimizer_kwargs=dict(eps=1e-5)),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    elapsed = time.perf_counter() - t0
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1_000_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(f"sb3 {args.steps} steps in {elapsed:.1f}s (torch threads {torch.get_num_threads()}); "
          f"final evaluation {mean:.2f} +- {std:.2f}")


if __name__ == "__main__":
    main()
