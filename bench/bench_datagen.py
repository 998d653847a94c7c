"""Data generation cost per scene: the warm scene server (new) against a fresh interpreter per scene (old),
CPU against GPU rendering, and what each part of a scene costs.

For each setting, renders the same `--scenes` real scenes (same seeds) through the real pipeline
(generate_dataset: Kubric + Blender, encode, tar, shard) once per path and prints one line per path plus a
comparison line measured in the same run:

  bench_datagen res=128 frames=12 spp=8 humans_animals=1 path=cold|warm device=cpu scenes=2 simulate_s=..
      render_s=.. annotate_s=.. write_s=.. startup_s=.. per_scene_s=.. overhead_s=.. overhead_ratio=..
      [server_start_s=.. overhead_ratio_with_server_start=..]
  bench_datagen res=128 frames=12 spp=8 compare new=warm old=cold per_scene_ratio=.. overhead_ratio_new=..
      overhead_ratio_old=.. identical_tracks_visibility_meta=True identical_video=True
  bench_datagen res=128 frames=12 spp=8 device=gpu per_scene_s=.. gpu_over_cpu=..   (or: gpu=n/a and why)

  simulate_s  scene build + PyBullet simulation, per scene (render_scene's timings)
  render_s    pure Blender/Cycles rendering (RGB pass + GT pass), per scene
  annotate_s  ground-truth tracks from depth/segmentation/poses
  write_s     video encode + per-scene tar write (in the scene process)
  startup_s   the rest of a scene process: interpreter start and imports (cold), fork (warm), exit
  per_scene_s wall time of generate_dataset per scene (shard assembly included), without the warm server's
              one-time start (server_start_s: its imports, once per `generate` run / SLURM task)
  overhead_ratio = (per_scene_s - render_s) / render_s: TrackForge's cost on top of the pure render.

With --codecs, also measures the candidate video encodings on each rendered video (one line per codec).

    python bench/bench_datagen.py [--settings 64x6x4 128x12x8] [--scenes 2] [--humans 0|1] [--devices cpu gpu]
                                  [--paths cold warm] [--set KEY=VALUE ...] [--codecs]
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_path(res: int, frames: int, spp: int, humans: int, scenes: int, path: str, device: str,
             out: Path, overrides: list[str] = ()) -> dict:
    """Render `scenes` one-scene shards with scene process `path` on `device`; per-scene means and the shards."""
    from datagen.config import load_data_config
    from datagen.pipeline.generate import generate_dataset

    cfg = load_data_config(ROOT / "configs/data/tiny.yaml", [
        f"scene.resolution=[{res},{res}]", f"scene.num_frames={frames}", f"scene.samples_per_pixel={spp}",
        f"scene.num_humans={humans}", f"scene.num_animals={humans}", f"generate.num_scenes={scenes}",
        "generate.scenes_per_shard=1", "generate.workers=1", "generate.max_retries=0",
        "scene.render_timeout_s=1800", f"generate.scene_process={path}", f"scene.render_device={device}",
        *overrides])
    t0 = time.perf_counter()
    report = generate_dataset(cfg, out, progress=False)
    total = time.perf_counter() - t0
    server = report.server_import_s or 0.0
    mean = {k: float(np.mean([t[k] for t in report.scene_timings.values()]))
            for k in ("simulate_s", "render_s", "annotate_s", "write_s", "process_s")}
    per_scene = (total - server) / scenes
    return dict(mean, total_s=total, server_s=server, per_scene_s=per_scene,
                startup_s=mean["process_s"] - mean["simulate_s"] - mean["render_s"] - mean["annotate_s"]
                - mean["write_s"],
                overhead_ratio=(per_scene - mean["render_s"]) / mean["render_s"],
                overhead_with_server=(total - scenes * mean["render_s"]) / (scenes * mean["render_s"]),
                shards=sorted(out.glob("shard-*.tar")))


def describe(tag: str, path: str, device: str, scenes: int, r: dict) -> str:
    line = (f"bench_datagen {tag} path={path} device={device} scenes={scenes} simulate_s={r['simulate_s']:.2f} "
            f"render_s={r['render_s']:.2f} annotate_s={r['annotate_s']:.3f} write_s={r['write_s']:.3f} "
            f"startup_s={r['startup_s']:.2f} per_scene_s={r['per_scene_s']:.2f} "
            f"overhead_s={r['per_scene_s'] - r['render_s']:.2f} overhead_ratio={r['overhead_ratio']:.3f}")
    if path == "warm":
        line += (f" server_start_s={r['server_s']:.2f} "
                 f"overhead_ratio_with_server_start={r['overhead_with_server']:.3f}")
    return line


def compare_shards(a: list[Path], b: list[Path]) -> tuple[bool, bool, int]:
    """(tracks/visibility/tracks3d/meta identical, video identical, max |video difference|) over the shards."""
    from datagen.formats.shard_io import iter_tar_samples
    from datagen.formats.shards import read_shards

    same_gt, same_video, max_diff = True, True, 0
    for pa, pb in zip(a, b, strict=True):
        for ra, rb in zip(iter_tar_samples(pa), iter_tar_samples(pb), strict=True):
            same_gt &= all(ra[k] == rb[k] for k in ("tracks.npy", "visibility.npy", "tracks3d.npy", "meta.json"))
            same_video &= ra["video.npy.zst"] == rb["video.npy.zst"]
        for sa, sb in zip(read_shards(str(pa)), read_shards(str(pb)), strict=True):
            max_diff = max(max_diff, int(np.abs(sa.video.astype(int) - sb.video).max()))
    return same_gt, same_video, max_diff


def gpu_available() -> tuple[bool, str]:
    """(Cycles finds a GPU, what it says), asked in a fresh process (GPU drivers are never touched here)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "datagen.scene.cycles_device"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    return proc.returncode == 0, (proc.stdout.strip().splitlines() or ["no answer"])[-1]


def bench_setting(res: int, frames: int, spp: int, humans: int, scenes: int, paths: list[str],
                  devices: list[str], tmp: Path, overrides: list[str] = ()) -> tuple[list[str], np.ndarray]:
    tag = f"res={res} frames={frames} spp={spp} humans_animals={humans}"
    lines, results = [], {}
    for path in paths:
        results[path] = run_path(res, frames, spp, humans, scenes, path, "cpu", tmp / f"{res}_{frames}_{path}",
                                 overrides)
        lines.append(describe(tag, path, "cpu", scenes, results[path]))
        print(lines[-1], flush=True)
    if {"cold", "warm"} <= set(results):
        new, old = results["warm"], results["cold"]
        same_gt, same_video, diff = compare_shards(new["shards"], old["shards"])
        lines.append(f"bench_datagen res={res} frames={frames} spp={spp} compare new=warm old=cold "
                     f"per_scene_ratio={new['per_scene_s'] / old['per_scene_s']:.3f} "
                     f"overhead_ratio_new={new['overhead_ratio']:.3f} overhead_ratio_old={old['overhead_ratio']:.3f} "
                     f"identical_tracks_visibility_meta={same_gt} identical_video={same_video} "
                     f"video_max_abs_diff={diff}")
        print(lines[-1], flush=True)
    if "gpu" in devices:
        ok, why = gpu_available()
        if not ok:
            lines.append(f"bench_datagen {tag} device=gpu per_scene_s=n/a gpu_over_cpu=n/a ({why})")
        else:
            cpu = results.get("warm") or next(iter(results.values()))
            gpu = run_path(res, frames, spp, humans, scenes, "warm", "gpu", tmp / f"{res}_{frames}_gpu", overrides)
            lines.append(describe(tag, "warm", "gpu", scenes, gpu) +
                         f" gpu_over_cpu={gpu['per_scene_s'] / cpu['per_scene_s']:.3f} ({why})")
        print(lines[-1], flush=True)
    from datagen.formats.shards import read_shards

    video = next(iter(read_shards(str(next(iter(results.values()))["shards"][0])))).video
    return lines, video


# ---------------------------------------------------------------------------------------------- codecs
def _av_encode(video: np.ndarray, codec: str, pix_fmt: str, options: dict) -> bytes:
    from datagen.formats.shard_io import encode_matroska

    return encode_matroska(video, codec, pix_fmt, 12, options)


def _av_decode(data: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data), format="matroska") as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _png_encode(video: np.ndarray) -> list[bytes]:
    from PIL import Image

    out = []
    for f in video:
        b = io.BytesIO()
        Image.fromarray(f).save(b, format="PNG", compress_level=1)
        out.append(b.getvalue())
    return out


def _png_decode(frames: list[bytes]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in frames])


def codec_candidates():
    from datagen.formats.shard_io import decode_video, encode_video

    def npy(v):
        b = io.BytesIO()
        np.save(b, v)
        return b.getvalue()

    return [
        ("ffv1", lambda v: encode_video(v, "ffv1")[1], lambda b: decode_video("mkv", b)),
        ("ffv1_l3_slicecrc", lambda v: _av_encode(v, "ffv1", "bgr0", {"level": "3", "slicecrc": "1"}), _av_decode),
        ("npy_zstd3", lambda v: encode_video(v, "npy_zstd")[1], lambda b: decode_video("npy.zst", b)),
        ("npy_raw", npy, lambda b: np.load(io.BytesIO(b))),
        ("x264rgb_crf0_ultrafast", lambda v: _av_encode(v, "libx264rgb", "rgb24",
                                                        {"crf": "0", "preset": "ultrafast"}), _av_decode),
        ("x264rgb_crf0_medium", lambda v: _av_encode(v, "libx264rgb", "rgb24",
                                                     {"crf": "0", "preset": "medium"}), _av_decode),
        ("png_per_frame", _png_encode, _png_decode),
    ]


def bench_codecs(video: np.ndarray, tag: str, repeats: int = 3) -> list[str]:
    lines = []
    for name, enc, dec in codec_candidates():
        t_enc, t_dec = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            data = enc(video)
            t_enc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            back = dec(data)
            t_dec.append(time.perf_counter() - t0)
        size = sum(map(len, data)) if isinstance(data, list) else len(data)
        exact = back.shape == video.shape and bool((back == video).all())
        lines.append(f"bench_datagen codec={name} {tag} size_kB={size / 1e3:.1f} ratio={video.nbytes / size:.2f} "
                     f"encode_ms={min(t_enc) * 1e3:.1f} decode_ms={min(t_dec) * 1e3:.1f} "
                     f"decode_ms_per_frame={min(t_dec) * 1e3 / len(video):.2f} lossless={exact}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="*", default=["64x6x4", "128x12x8"],
                    help="RESxFRAMESxSPP per setting (square resolution)")
    ap.add_argument("--scenes", type=int, default=2, help="scenes per path and setting (same seeds)")
    ap.add_argument("--humans", type=int, default=1, help="humans and animals per scene (default 1 each)")
    ap.add_argument("--paths", nargs="*", default=["cold", "warm"], choices=["cold", "warm"],
                    help="scene processes: cold = fresh interpreter per scene (old), warm = forked (new)")
    ap.add_argument("--devices", nargs="*", default=["cpu", "gpu"], choices=["cpu", "gpu"],
                    help="render devices (gpu: n/a when Cycles finds none)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    ap.add_argument("--codecs", action="store_true", help="also measure the video encodings on each render")
    ap.add_argument("--codec-video", default=None, help="measure codecs on the first sample of this shard only")
    args = ap.parse_args()
    if args.codec_video:
        from datagen.formats.shards import read_shards

        video = next(iter(read_shards(args.codec_video))).video
        tag = f"res={video.shape[1]}x{video.shape[2]} frames={video.shape[0]}"
        for line in bench_codecs(video, tag):
            print(line, flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench_datagen_") as tmp:
        for setting in args.settings:
            res, frames, spp = (int(v) for v in setting.split("x"))
            _, video = bench_setting(res, frames, spp, args.humans, args.scenes, args.paths, args.devices,
                                     Path(tmp), args.set)
            if args.codecs:
                for cline in bench_codecs(video, f"res={res} frames={frames}"):
                    print(cline, flush=True)


if __name__ == "__main__":
    main()
