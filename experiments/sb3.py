"""Stable-Baselines3 with the hyperparameters of this repository's configs, for wall-clock
comparisons (speed_vs_sb3.sh) and for reference runs:

- ppo: PPO on CartPole-v1 as configs/ppo.yaml (CleanRL's ppo.py), 500k steps;
- dqn: DQN on CartPole-v1 as configs/dqn-cartpole-zoo.yaml (rl-baselines3-zoo's), 50k steps;
- sac: SAC on Pendulum-v1 as configs/sac-pendulum-zoo.yaml (rl-baselines3-zoo's), 20k steps.

Prints the wall-clock of `model.learn` and the final deterministic evaluation (20 episodes).
Run it inside a venv with `pip install stable-baselines3==2.9.* gymnasium==1.4.0`.
"""
import argparse
import time

import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy


def linear(start):
    return lambda progress_remaining: progress_remaining * start


def build(algo, seed):
    """The model, its env id and its step budget."""
    if algo == "ppo":
        env = make_vec_env("CartPole-v1", n_envs=4, seed=seed)
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
            seed=seed,
            device="cpu",
            verbose=0,
        )
        return model, "CartPole-v1", 500_000
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
    p.add_argument("algo", choices=["ppo", "dqn", "sac"])
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
