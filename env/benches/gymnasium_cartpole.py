"""Gymnasium's CartPole-v1 steps/s, the baseline for `cargo bench -p rl-env --bench cartpole`.

Same workload as the Rust bench: a fixed 0/1 action pattern, single env (with TimeLimit, reset on
episode end) and a SyncVectorEnv of 256 sub-envs (same-step autoreset).
Run: pip install -r ../fixtures/requirements.txt && python gymnasium_cartpole.py
"""
import time

import gymnasium as gym
import numpy as np


def actions(n):
    rng = np.random.default_rng(0)
    return rng.integers(0, 2, size=n)


def best_rate(fn, steps, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return steps / best


def main():
    n = 20_000
    acts = [int(a) for a in actions(n)]
    env = gym.make("CartPole-v1")
    env.reset(seed=0)

    def single():
        for a in acts:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()

    print(f"gymnasium {gym.__version__} CartPole-v1 single env: {best_rate(single, n):,.0f} steps/s")

    num = 256
    venv = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1") for _ in range(num)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    venv.reset(seed=0)
    vacts = actions(num * 100).reshape(100, num)

    def vector():
        for row in vacts:
            venv.step(row)

    print(f"gymnasium {gym.__version__} CartPole-v1 SyncVectorEnv x256: {best_rate(vector, num * 100, 3):,.0f} steps/s")


if __name__ == "__main__":
    main()
