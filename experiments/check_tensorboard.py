"""Check a run directory's TensorBoard event files with the real `tensorboard` package.

Prints every scalar tag with its number of points and last (step, value), and exits non-zero if
no event file is found or a tag given with `--expect TAG` (repeatable) is missing.
Run it inside a venv with `pip install tensorboard`:

    python experiments/check_tensorboard.py runs/ppo-cartpole --expect env_runners/episode_return_mean
"""
import argparse
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="directory holding events.out.tfevents.* files")
    p.add_argument("--expect", action="append", default=[], metavar="TAG", help="a scalar tag that must be present")
    args = p.parse_args()

    files = sorted(args.run_dir.glob("*tfevents*"))
    if not files:
        print(f"error: no event files in {args.run_dir}", file=sys.stderr)
        return 2
    for f in files:
        print(f"file: {f.name} ({f.stat().st_size} bytes)")

    # size_guidance 0 keeps every scalar point instead of a reservoir sample.
    acc = EventAccumulator(str(args.run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    print(f"{len(tags)} scalar tags")
    for tag in tags:
        points = acc.Scalars(tag)
        last = points[-1]
        print(f"{tag}: {len(points)} points, last step {last.step} value {last.value:.6g}")

    missing = [t for t in args.expect if t not in tags]
    for t in missing:
        print(f"error: expected tag missing: {t}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
