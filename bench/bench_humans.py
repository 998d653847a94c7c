"""Cost of one anny person per scene (no rendering): model load, posing, skinning, the Blender mesh.

One line for the model load, then one line per frame count (the number to compare between runs is
seconds_per_human; the parts after it are its retargeting, skinning and Blender shares):

  bench_humans model_load_s=4.8 (once per scene process)
  bench_humans frames=24 clip=random seconds_per_human=1.6 retarget_s=1.0 skin_s=0.3 blender_s=0.15 vertices=13718

    python bench/bench_humans.py [--frames 24 48] [--repeats 4] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[24])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a scene worker's share)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from datagen.actors.humans import actor, body
    from datagen.scene import kubric_compat

    t0 = time.perf_counter()
    body.load_model()
    print(f"bench_humans model_load_s={time.perf_counter() - t0:.2f} (once per scene process)", flush=True)
    kubric_compat.apply()
    from kubric.safeimport.bpy import bpy

    actor.pose_human(np.random.default_rng(0), 2, 12.0, clip="walk")  # warm clip/skeleton caches
    for frames in args.frames:
        rng = np.random.default_rng(1)
        parts = {"retarget_s": 0.0, "skin_s": 0.0, "blender_s": 0.0}
        start = time.perf_counter()
        for i in range(args.repeats):
            motion = actor.pose_human(rng, frames, 12.0)
            parts["retarget_s"] += motion.timings["retarget_s"]
            parts["skin_s"] += motion.timings["skin_s"]
            t = time.perf_counter()
            obj = actor.add_human_object(bpy, motion, f"bench{i}", 0)
            parts["blender_s"] += time.perf_counter() - t
            bpy.data.objects.remove(obj, do_unlink=True)
        per_human = (time.perf_counter() - start) / args.repeats
        extra = " ".join(f"{k}={v / args.repeats:.2f}" for k, v in parts.items())
        print(f"bench_humans frames={frames} clip=random seconds_per_human={per_human:.2f} {extra} "
              f"vertices={motion.vertices.shape[1]}", flush=True)


if __name__ == "__main__":
    main()
