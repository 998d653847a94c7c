"""Contact sheets of every data preset, to look at: renders the first scenes of each preset (its own seeds and
settings, fewer frames) and writes two sheets per preset, the frames alone and with the ground-truth tracks drawn:

    <out>/<preset>.png          rows = scenes, columns = evenly spaced frames
    <out>/<preset>_tracks.png   the same with tracks (visible: discs, occluded: rings, tails)

and prints one line per preset (seconds per scene). Run it before and after a change to the looks of the data
(from a checkout of each version) and compare the sheets side by side.

    python bench/preset_sheets.py --out runs/sheets                      # every preset, 3 scenes x 4 frames
    python bench/preset_sheets.py --presets face_closeup,humans_mix --scenes 4 --res 256 --out /tmp/sheets
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def presets() -> list[str]:
    return sorted(p.stem for p in (REPO / "configs" / "data").glob("*.yaml"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="all", help="comma-separated preset names (configs/data/<name>.yaml) or all")
    ap.add_argument("--scenes", type=int, default=3, help="scenes per preset (rows)")
    ap.add_argument("--frames", type=int, default=4, help="frames rendered and shown per scene (columns)")
    ap.add_argument("--res", type=int, default=0, help="render at RES x RES (default: the preset's resolution)")
    ap.add_argument("--out", required=True, help="folder of the sheets")
    args = ap.parse_args(argv)
    names = presets() if args.presets == "all" else [n.strip() for n in args.presets.split(",") if n.strip()]
    unknown = [n for n in names if n not in presets()]
    if unknown or args.scenes < 1 or args.frames < 2:
        print(f"preset_sheets: unknown presets {unknown} (choices: {presets()})" if unknown
              else "preset_sheets: need --scenes >= 1 and --frames >= 2", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"sheet_{name}_") as tmp:
            overrides = [f"scene.num_frames={args.frames}", f"generate.num_scenes={args.scenes}",
                         f"generate.scenes_per_shard={args.scenes}", "generate.workers=1", "scene.num_tracks=256"]
            if args.res:
                overrides.append(f"scene.resolution=[{args.res},{args.res}]")
            t0 = time.perf_counter()
            gen = subprocess.run([sys.executable, "-m", "datagen", "generate", "--config",
                                  str(REPO / "configs" / "data" / f"{name}.yaml"), "--out", tmp, "--no-progress",
                                  *overrides], cwd=REPO, capture_output=True, text=True)
            seconds = (time.perf_counter() - t0) / args.scenes
            if gen.returncode != 0:
                print(f"preset_sheets preset={name} failed: {(gen.stderr or gen.stdout).strip().splitlines()[-1:]}")
                continue
            for suffix, extra in (("", ["--no-tracks"]), ("_tracks", ["--max-tracks", "80", "--tail", "3"])):
                subprocess.run([sys.executable, "-m", "datagen", "preview", f"{tmp}/shard-*.tar",
                                "--out", str(Path(tmp) / f"p{suffix}.mp4"), "--sheet", str(out / f"{name}{suffix}.png"),
                                "--sheet-scenes", str(args.scenes), "--sheet-frames", str(args.frames), *extra],
                               cwd=REPO, check=True, capture_output=True)
        print(f"preset_sheets preset={name} scenes={args.scenes} frames={args.frames} s_per_scene={seconds:.1f} "
              f"sheets={out / name}.png,{out / name}_tracks.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
