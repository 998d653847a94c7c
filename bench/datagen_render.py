"""Render-time benchmark for datagen.scene.render.render_scene: one line per setting.

    python bench/datagen_render.py [--settings tiny,movi256] [--seed 0] [--device auto|cpu|gpu]
                                   [--workdir /tmp/trackforge_bench]

Each setting renders in a fresh subprocess (Blender keeps global state), like the pipeline does.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SETTINGS = {
    # the test scene: 64x64, 5 frames, 4 spp, object + human + animal
    "tiny": dict(resolution=[64, 64], num_frames=5, samples_per_pixel=4, num_humans=1, num_animals=1),
    # reference: plain Kubric renders 256x256, 24 frames, 32 spp in ~30 s on this machine
    "movi256": dict(resolution=[256, 256], num_frames=24, samples_per_pixel=32),
    "movi256_actors": dict(resolution=[256, 256], num_frames=24, samples_per_pixel=32, num_humans=1,
                           num_animals=1),
    # MOVi-F-like: 512x512, 24 frames at 12 fps, 10-20 static + 1-3 tossed, 64 spp, motion blur
    "movif512": dict(resolution=[512, 512], num_frames=24, samples_per_pixel=64,
                     num_static_objects=[10, 20], num_tossed_objects=[1, 3], motion_blur=[0.0, 2.0]),
}

_CHILD = """
import json, sys, time
from pathlib import Path
from datagen.config.scene import SceneConfig
from datagen.scene.render import render_scene
kw, seed, workdir = json.loads(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
t = time.perf_counter()
r = render_scene(SceneConfig(**kw), seed, workdir)
s = r.sample
print("RESULT " + json.dumps({"total_s": time.perf_counter() - t, **r.run["timings"],
                              "visible": float(s.visibility.mean()), "device": s.meta.get("render_device")}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", default="tiny,movi256")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/trackforge_bench")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="scene.render_device")
    args = ap.parse_args()
    for name in args.settings.split(","):
        t = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        settings = dict(SETTINGS[name], render_device=args.device)
        out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(settings), str(args.seed),
                              f"{args.workdir}/{name}"], capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not line:
            print(f"{name}: FAILED rc={out.returncode} {out.stderr[-500:]}")
            continue
        r = json.loads(line[0][7:])
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r["cpu_s"] = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)  # all threads
        print(f"{name} on {r['device']}: wall {time.perf_counter() - t:.1f}s (in-process {r['total_s']:.1f}s: simulate "
              f"{r['simulate_s']:.1f}s, render {r['render_s']:.1f}s (GT pass {r['render_gt_s']:.1f}s), annotate {r['annotate_s']:.2f}s; "
              f"CPU {r['cpu_s']:.0f}s over all threads) "
              f"visible {r['visible']:.2f}", flush=True)


if __name__ == "__main__":
    main()
