"""Overlay videos of a checkpoint on DAVIS sequences, made the way a user makes them, and one contact sheet to look at.

    python bench/davis_overlays.py --checkpoint runs/cpu_hour-.../checkpoints/last.ckpt \
        --davis ../shared/data/davis --out runs/davis_overlays

For every sequence: the mask-consistency queries (a grid on the eroded first-frame object mask,
lightning_modules.evaluation.mask_queries) are written as a queries CSV, `python -m tracker track <frame folder>
--checkpoint CKPT --queries q.csv --viz <seq>.mp4 --out <seq>.npz --keep-aspect` runs them (the model input `make
eval` gives mask benchmarks), and four frames of the overlay (first,
a third, two thirds, last) go into one row of `sheet.png` with the object's mask outline in white, so a point
that left its object is easy to see. Prints one line per sequence with the share of points inside the mask at
the last frame.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _outline(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> bool (H, W): the mask's boundary pixels."""
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def run_sequence(args: argparse.Namespace, seq: str) -> np.ndarray:
    from datagen.formats.davis import read_davis_sequence
    from lightning_modules.evaluation.mask_queries import place_mask_queries
    from tracker.video import read_video

    sample = read_davis_sequence(args.davis, seq)
    frames_q, xy, objects = place_mask_queries(sample.masks)
    keep = np.linspace(0, len(xy) - 1, min(args.points, len(xy))).round().astype(int)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{seq}_queries.csv"
    csv.write_text("".join(f"{t},{x:.1f},{y:.1f}\n" for t, (x, y) in zip(frames_q[keep], xy[keep])))
    folder = Path(args.davis) / "JPEGImages" / "480p" / seq
    cmd = [sys.executable, "-m", "tracker", "track", str(folder), "--checkpoint", args.checkpoint,
           "--queries", str(csv), "--out", str(out / f"{seq}.npz"), "--viz", str(out / f"{seq}.mp4"),
           *(["--keep-aspect"] if args.keep_aspect else [])]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    tracks = np.load(out / f"{seq}.npz")["tracks"]  # (T, N, 2) input pixels
    last = np.clip(np.round(tracks[-1]).astype(int), 0, [sample.width - 1, sample.height - 1])
    inside = sample.masks[-1][last[:, 1], last[:, 0]] == objects[keep]
    print(f"davis_overlays seq={seq} points={len(keep)} inside_last_frame={inside.mean():.2f}", flush=True)
    video, _ = read_video(out / f"{seq}.mp4")
    picks = np.linspace(0, len(video) - 1, 4).round().astype(int)
    row = []
    for t in picks:
        frame = video[t].copy()
        h, w = min(frame.shape[0], sample.height), min(frame.shape[1], sample.width)
        frame[:h, :w][_outline(sample.masks[t][:h, :w] > 0)] = 255
        row.append(frame[:: args.shrink, :: args.shrink])
    return np.concatenate(row, axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--davis", default=str(REPO.parent / "shared" / "data" / "davis"))
    p.add_argument("--out", default="runs/davis_overlays")
    p.add_argument("--points", type=int, default=48, help="queries per sequence (evenly picked from the grid)")
    p.add_argument("--keep-aspect", action=argparse.BooleanOptionalAction, default=True,
                   help="the model sees each video at its own aspect ratio, as `make eval` scores mask benchmarks "
                        "(default on)")
    p.add_argument("--shrink", type=int, default=2, help="contact sheet: keep every n-th pixel")
    args = p.parse_args()
    from PIL import Image

    seqs = sorted(d.name for d in (Path(args.davis) / "JPEGImages" / "480p").iterdir() if d.is_dir())
    rows = [run_sequence(args, s) for s in seqs]
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    Image.fromarray(sheet).save(Path(args.out) / "sheet.png")
    print(f"contact sheet: {Path(args.out) / 'sheet.png'}")


if __name__ == "__main__":
    main()
