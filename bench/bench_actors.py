"""Cost of posing the articulated actors (mocap + pybullet FK + floor search; no Kubric, no rendering).

One line per setting:

  bench_actors kind=human frames=24 vary_body=True seconds_per_actor=0.05 parts=16

    python bench/bench_actors.py [--frames 24 48] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from datagen import articulated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[24, 48])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for kind in ("human", "animal"):
        articulated.pose_actor(kind, np.random.default_rng(0), 2, 12.0, vary_body=False)  # warm caches
        for frames in args.frames:
            for vary in (False, True):
                rng = np.random.default_rng(0)
                start = time.perf_counter()
                for _ in range(args.repeats):
                    motion = articulated.pose_actor(kind, rng, frames, 12.0, vary_body=vary)
                elapsed = (time.perf_counter() - start) / args.repeats
                print(f"bench_actors kind={kind} frames={frames} vary_body={vary} "
                      f"seconds_per_actor={elapsed:.3f} parts={len(motion.part_names)}", flush=True)


if __name__ == "__main__":
    main()
