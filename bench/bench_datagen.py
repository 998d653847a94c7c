"""Data generation cost per scene, split into simulate / render / annotate / write, and TrackForge's overhead.

For each setting, renders ONE real scene through the real pipeline (generate_dataset: a fresh
`python -m datagen render-scene` process, Kubric + Blender, encode, tar) and prints one line:

  bench_datagen res=64 frames=6 spp=4 simulate_s=.. render_s=.. annotate_s=.. write_s=.. startup_s=.. total_s=..
      overhead_s=.. overhead_ratio=..

  simulate_s  scene build + PyBullet simulation (from render_scene's timings)
  render_s    pure Blender/Cycles rendering (RGB pass + GT pass)
  annotate_s  ground-truth tracks from depth/segmentation/poses
  write_s     video encode + per-scene tar write (in the scene process)
  startup_s   everything else in the scene process: interpreter start, imports (bpy, Kubric, TensorFlow), exit
  total_s     wall time of generate_dataset for the one scene (includes shard assembly)
  overhead_ratio = (total_s - render_s) / render_s: TrackForge's cost on top of the pure render.

With --codecs, also measures the candidate video encodings on each rendered video (one line per codec).
Defaults finish in a few minutes on 2 CPU cores.

    python bench/bench_datagen.py [--settings 64x6x4 128x12x8] [--codecs] [--humans 0|1]
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_setting(res: int, frames: int, spp: int, humans: int, tmp: Path) -> tuple[str, np.ndarray]:
    from datagen.config import load_data_config
    from datagen.generate import generate_dataset
    from datagen.shards import read_shards

    cfg = load_data_config(ROOT / "configs/data/tiny.yaml", [
        f"scene.resolution=[{res},{res}]", f"scene.num_frames={frames}", f"scene.samples_per_pixel={spp}",
        f"scene.num_humans={humans}", f"scene.num_animals={humans}", "generate.num_scenes=1",
        "generate.scenes_per_shard=1", "generate.workers=1", "generate.max_retries=0",
        "scene.render_timeout_s=1800"])
    out = tmp / f"r{res}_f{frames}_s{spp}"
    t0 = time.perf_counter()
    report = generate_dataset(cfg, out, progress=False)
    total = time.perf_counter() - t0
    t = report.scene_timings[0]
    startup = t["process_s"] - t["simulate_s"] - t["render_s"] - t["annotate_s"] - t["write_s"]
    overhead = total - t["render_s"]
    line = (f"bench_datagen res={res} frames={frames} spp={spp} humans_animals={humans} "
            f"simulate_s={t['simulate_s']:.2f} render_s={t['render_s']:.2f} annotate_s={t['annotate_s']:.3f} "
            f"write_s={t['write_s']:.3f} startup_s={startup:.2f} total_s={total:.2f} "
            f"overhead_s={overhead:.2f} overhead_ratio={overhead / t['render_s']:.2f}")
    video = next(iter(read_shards(str(out / "shard-*.tar")))).video
    return line, video


# ---------------------------------------------------------------------------------------------- codecs
def _av_encode(video: np.ndarray, codec: str, pix_fmt: str, options: dict) -> bytes:
    from datagen.shards import encode_matroska

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
    from datagen.shards import decode_video, encode_video

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
    ap.add_argument("--humans", type=int, default=1, help="humans and animals per scene (default 1 each)")
    ap.add_argument("--codecs", action="store_true", help="also measure the video encodings on each render")
    ap.add_argument("--codec-video", default=None, help="measure codecs on the first sample of this shard only")
    args = ap.parse_args()
    if args.codec_video:
        from datagen.shards import read_shards

        video = next(iter(read_shards(args.codec_video))).video
        tag = f"res={video.shape[1]}x{video.shape[2]} frames={video.shape[0]}"
        for line in bench_codecs(video, tag):
            print(line, flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench_datagen_") as tmp:
        for setting in args.settings:
            res, frames, spp = (int(v) for v in setting.split("x"))
            line, video = bench_setting(res, frames, spp, args.humans, Path(tmp))
            print(line, flush=True)
            if args.codecs:
                for cline in bench_codecs(video, f"res={res} frames={frames}"):
                    print(cline, flush=True)


if __name__ == "__main__":
    main()
