"""Are the rendered frames clean, and at what cost? For each data preset, renders the same scenes (the preset's
first seeds) with the preset's settings and with variants, and as a high-sample reference (--ref-spp, default
512 samples per pixel, no denoising, no adaptive sampling; one per distinct scene: a variant that changes the scene,
its lighting say, gets its own), then prints one line per preset and variant:

    bench_image_quality preset=face_closeup variant=preset res=128 frames=4 scenes=2 s_per_scene=11.8
        psnr_db=34.6,18.3 min_psnr_db=18.3 time_ratio=1.00

psnr_db: per scene, the PSNR (8-bit RGB, all frames) against the reference of the same scene (same seed, same
geometry and motion, only the colour pass differs); time_ratio: seconds per scene over the first variant's, both
measured in this run. Only the RGB pass changes between variants: the ground-truth layers come from their own
one-sample pass (scene.exact_gt_pass, datagen.scene.render._render_passes) whatever the colour settings.

    python bench/bench_image_quality.py                                     # every preset, preset settings
    python bench/bench_image_quality.py --presets default,face_closeup \\
        --variant old:scene.use_denoising=false,scene.adaptive_sampling=false,scene.samples_per_pixel=16
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REFERENCE = ["scene.use_denoising=false", "scene.adaptive_sampling=false"]  # + scene.samples_per_pixel=--ref-spp
# Settings a 512-sample undenoised reference does not depend on: variants that differ only in these (and in the
# colour pass's samples, denoising and adaptive sampling) share one reference.
NOT_IN_REFERENCE = ("denoising_quality", "adaptive_threshold", "adaptive_min_samples", "render_device",
                    "persistent_data", "exact_gt_pass", "render_timeout_s", "verbose")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 videos (T, H, W, 3)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def _split(text: str) -> list[str]:
    """'a=1,b=[2,3]' -> ['a=1', 'b=[2,3]'] (commas inside brackets stay)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    return [item for item in items if item]


def _scene_cfg(preset: str, res: int, frames: int, overrides: list[str]):
    from datagen.config import load_data_config

    return load_data_config(REPO / "configs" / "data" / f"{preset}.yaml",
                            [f"scene.resolution=[{res},{res}]", f"scene.num_frames={frames}", *overrides])


def _render(cfg, seed: int, workdir: Path, threads: int | None) -> tuple[np.ndarray, float]:
    from datagen.scene.render import render_scene

    t0 = time.perf_counter()
    sample = render_scene(cfg.scene, seed, workdir, threads=threads).sample
    return sample.video, time.perf_counter() - t0


def _save_sheet(path: Path, panels: list[list[np.ndarray]]) -> None:
    """Rows = scenes, columns = each reference then the variants scored against it (uint8 frames (H, W, 3))."""
    from PIL import Image

    rows = [np.concatenate([column[i] for column in panels], axis=1) for i in range(len(panels[0]))]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main(argv: list[str] | None = None) -> None:
    from datagen.pipeline.layout import derive_seed

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="", help="comma-separated configs/data names (default: all)")
    p.add_argument("--res", type=int, default=128)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--scenes", type=int, default=2, help="N scene seeds of the preset")
    p.add_argument("--first-scene", type=int, default=0, help="scene index of the first (default 0)")
    p.add_argument("--ref-spp", type=int, default=512,
                   help="samples per pixel of the reference (>= 512); 0: no reference, seconds only (a first "
                        "render, not counted, takes Blender's first-render costs off the first variant)")
    p.add_argument("--threads", type=int, default=None, help="Cycles threads (default: every core)")
    p.add_argument("--save", default=None, help="write <preset>.png there: first frame of each scene, side by side: "
                                                "each reference, then the variants scored against it")
    p.add_argument("--set", default="", help="key=value,... applied to every render (reference included)")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME:key=value,key=value (repeatable); 'preset' (no overrides) always comes first")
    args = p.parse_args(argv)
    common = _split(args.set)

    presets = [s for s in args.presets.split(",") if s] or sorted(
        f.stem for f in (REPO / "configs" / "data").glob("*.yaml"))
    variants = [("preset", [])] + [(v.split(":", 1)[0], _split(v.split(":", 1)[1])) for v in args.variant]
    with tempfile.TemporaryDirectory(prefix="bench_iq-") as tmp:
        for preset in presets:
            base = _scene_cfg(preset, args.res, args.frames, common)
            seeds = [derive_seed(base.generate.base_seed, i, 0)
                     for i in range(args.first_scene, args.first_scene + args.scenes)]
            references: dict[str, list[np.ndarray]] = {}  # reference renders by their resolved scene config
            first_time = None
            panels = []
            if not args.ref_spp:
                _render(_scene_cfg(preset, args.res, args.frames, common + variants[0][1]), seeds[0],
                        Path(tmp) / f"{preset}-warmup", args.threads)
            for name, overrides in variants:
                refs = [None] * len(seeds)
                if args.ref_spp:
                    # A variant that changes the scene (its lighting, say) is scored against a reference of that
                    # scene; variants of the colour settings alone share the preset's.
                    ref_cfg = _scene_cfg(preset, args.res, args.frames, [
                        *common, *overrides, *REFERENCE, f"scene.samples_per_pixel={args.ref_spp}"])
                    key = json.dumps({k: v for k, v in ref_cfg.to_dict()["scene"].items()
                                      if k not in NOT_IN_REFERENCE}, sort_keys=True)
                    if key not in references:
                        references[key] = [_render(ref_cfg, s, Path(tmp) / f"{preset}-ref{len(references)}-{s}",
                                                   args.threads)[0] for s in seeds]
                        panels.append([ref[0] for ref in references[key]])
                    refs = references[key]
                panels.append([])
                cfg = _scene_cfg(preset, args.res, args.frames, common + overrides)
                scores, seconds = [], []
                for seed, ref in zip(seeds, refs):
                    video, dt = _render(cfg, seed, Path(tmp) / f"{preset}-{name}-{seed}", args.threads)
                    scores.append(psnr(video, ref) if ref is not None else float("nan"))
                    seconds.append(dt)
                    panels[-1].append(video[0])
                per_scene = sum(seconds) / len(seconds)
                first_time = first_time or per_scene
                sc = cfg.scene
                print(f"bench_image_quality preset={preset} variant={name} spp={sc.samples_per_pixel} "
                      f"denoise={sc.use_denoising} adaptive={sc.adaptive_sampling} res={args.res} "
                      f"frames={args.frames} scenes={len(seeds)} ref_spp={args.ref_spp} s_per_scene={per_scene:.1f} "
                      f"psnr_db={','.join(f'{s:.1f}' for s in scores)} min_psnr_db={min(scores):.1f} "
                      f"time_ratio={per_scene / first_time:.2f}", flush=True)
            if args.save:
                _save_sheet(Path(args.save) / f"{preset}.png", panels)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
