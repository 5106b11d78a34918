# Summarises the CleanRL ppo.py runs made by experiments/cleanrl_reference.sh: for each seed, the
# mean return of its last 100 logged training episodes, then mean ± population std over seeds,
# plus each run's wall-clock when wallclock.tsv is there.
#
#   python experiments/cleanrl_reference.py WORK_DIR [--env-id Acrobot-v1] [--last 100]
#
# Needs the optional Python venv that cleanrl_reference.sh sets up (for tensorboard's event
# reader); without TensorBoard event files it falls back to the runs' stdout logs.
import argparse
import glob
import os
import re
import statistics

TAGS = ("charts/episodic_return", "charts/episode_reward")
LOG_RE = re.compile(r"global_step=(\d+), (?:episodic_return|episode_reward)=\[?(-?[0-9.eE+-]+)")


def returns_from_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    for tag in TAGS:
        if tag in acc.Tags().get("scalars", []):
            return [e.value for e in acc.Scalars(tag)]
    return []


def returns_from_log(path):
    with open(path) as f:
        return [float(m.group(2)) for m in LOG_RE.finditer(f.read())]


def latest_run(work, env_id, seed):
    # ppo.py names its run directory ENV__EXP__SEED__UNIXTIME; take the newest one per seed.
    dirs = glob.glob(os.path.join(work, "runs", f"{env_id}__*__{seed}__*"))
    return max(dirs, key=lambda d: int(d.rsplit("__", 1)[1])) if dirs else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("work")
    p.add_argument("--env-id", default="Acrobot-v1")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--last", type=int, default=100)
    a = p.parse_args()

    wall = {}
    wall_path = os.path.join(a.work, "wallclock.tsv")
    if os.path.exists(wall_path):
        with open(wall_path) as f:
            for line in f:
                seed, secs = line.split()
                wall[int(seed)] = float(secs)

    means = []
    for seed in a.seeds:
        run = latest_run(a.work, a.env_id, seed)
        rets = returns_from_events(run) if run else []
        source = "tensorboard"
        log = os.path.join(a.work, f"log_seed{seed}.txt")
        if not rets and os.path.exists(log):
            rets, source = returns_from_log(log), "stdout log"
        if not rets:
            print(f"seed {seed}: no episodes found")
            continue
        tail = rets[-a.last:]
        m = sum(tail) / len(tail)
        means.append(m)
        extra = f", wall-clock {wall[seed]:.0f}s" if seed in wall else ""
        print(f"seed {seed}: last {len(tail)} of {len(rets)} episodes mean {m:.2f} ({source}{extra})")
    if means:
        print(f"{a.env_id}: {statistics.fmean(means):.2f} ± {statistics.pstdev(means):.2f}"
              f" (mean ± population std over {len(means)} seeds)")


if __name__ == "__main__":
    main()
