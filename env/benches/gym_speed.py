"""Gymnasium's own Python loop: the baseline for env/examples/gym_speed.rs.

Steps one env with 1,000 pre-drawn random actions, cycled, resetting when an episode ends, and
prints env steps per second. Usage: python env/benches/gym_speed.py [STEPS] [ENV_ID...]
"""

import sys
import time

import gymnasium as gym


def measure(env_id, steps):
    env = gym.make(env_id)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.reset(seed=0)
    start = time.perf_counter()
    for t in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[t % len(actions)])
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    ids = sys.argv[2:] or ["CartPole-v1", "HalfCheetah-v4"]
    print("| env | design | threads | steps/s |")
    print("| --- | --- | --- | ---: |")
    for env_id in ids:
        print("| %s | python | 1 | %.0f |" % (env_id, measure(env_id, steps)))


if __name__ == "__main__":
    main()
