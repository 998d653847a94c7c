"""`make eval`: a checkpoint from a real (tiny) Trainer run scored on benchmarks the test writes from real rendered
shards (a TAP-Vid pickle with uint8 and JPEG frames, sparse keypoint .npz files, our shards): one table, one JSON,
a prediction cache that makes a rerun score only, single-point mode, one-line errors."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
NUM_TRACKS = 6  # tracks per video of the `benchmarks` fixture (tests/training/conftest.py)


def _make_eval(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    # -o env: the environment is installed already (CI runs `make env` first); PY: this interpreter.
    return subprocess.run(["make", "--no-print-directory", "-o", "env", "-C", str(REPO), "eval",
                           f"PY={sys.executable}", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_make_eval_two_benchmarks_one_table_and_cache(tiny_checkpoint, benchmarks, tmp_path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
benchmarks:
  - name: tapvid_synth
    path: {benchmarks['tapvid']}
    query_modes: [first, strided]
  - name: sparse_synth
    format: sparse_npz
    path: {benchmarks['sparse']}
modes: [joint]
""")
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = _make_eval(f"CKPT={tiny_checkpoint('online')}", f"BENCH={suite}", f"ARGS=out={out} cache_dir={cache}")
    assert proc.returncode == 0, proc.stderr
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + 3  # header, rule, 2 query modes + 1: one table
    assert table[0].split("|")[1:-1] == [" benchmark ", " queries ", " predictor ", " videos ", " AJ ",
                                         " delta_avg ", " OA ", " PCK@0.2 ", " AJ zero ", " delta_avg zero ",
                                         " OA zero ", " PCK@0.2 zero "]
    assert (out / "eval.md").read_text().count("| tapvid_synth |") == 2
    results = json.loads((out / "eval.json").read_text())
    assert results["variant"] == "online" and results["input_resolution"] == [64, 64]
    rows = {(r["benchmark"], r["query_mode"], r["mode"]): r for r in results["results"]}
    assert set(rows) == {(b, q, m) for b, q in (("tapvid_synth", "first"), ("tapvid_synth", "strided"),
                                                 ("sparse_synth", "first")) for m in ("joint",)}
    for r in rows.values():
        assert r["num_videos"] == 2 and r["format"] in ("tapvid", "sparse_npz")
        assert all(v is None or 0 <= v <= 1 for part in ("model", "zero_motion") for v in r[part].values())
    first = rows[("tapvid_synth", "first", "joint")]
    assert [v["num_queries"] for v in first["per_video"]] == [NUM_TRACKS, NUM_TRACKS]
    assert rows[("tapvid_synth", "strided", "joint")]["per_video"][0]["num_queries"] > NUM_TRACKS
    assert "pck" in rows[("sparse_synth", "first", "joint")]["model"]
    # A rerun only scores: every prediction comes from the cache, same numbers.
    from lightning_modules.cli import main

    assert main(["eval", "--checkpoint", str(tiny_checkpoint("online")), "--bench", str(suite), f"out={out}",
                 f"cache_dir={cache}"]) == 0
    again = json.loads((out / "eval.json").read_text())
    assert again["cache"] == {"hits": results["cache"]["misses"], "misses": 0}
    assert again["results"] == results["results"]


@pytest.mark.slow
def test_single_point_mode(tiny_checkpoint, benchmarks, tmp_path) -> None:
    """The published numbers' protocol: each query alone (with its local and the global grid); both predictor
    modes in one run, cached under separate settings."""
    from lightning_modules.cli import main

    out, cache = tmp_path / "out", tmp_path / "cache"
    assert main(["eval", "--checkpoint", str(tiny_checkpoint("offline")), "--data", str(benchmarks["two"]),
                 "--mode", "joint", "--mode", "single_point", "--max-frames", "8", "--out", str(out),
                 f"cache_dir={cache}"]) == 0
    results = json.loads((out / "eval.json").read_text())
    assert [(r["mode"], r["num_videos"]) for r in results["results"]] == [("joint", 1), ("single_point", 1)]
    joint, single = (r["per_video"][0] for r in results["results"])
    assert joint["num_queries"] == single["num_queries"] == 2 and joint["zero_motion"] == single["zero_motion"]
    settings = sorted(p.name for p in next(cache.iterdir()).joinpath("two").iterdir())
    assert settings == ["first-joint-it6-g5-64x64-f8", "first-single_point-it6-g5-64x64-f8"]


@pytest.mark.slow
def test_pickle_and_shard_of_the_same_clip_score_the_same(tiny_checkpoint, benchmarks, tmp_path, capsys) -> None:
    """The TAP-Vid reader (normalised points, uint8 frames) and our shard reader see the same data."""
    from lightning_modules.cli import main

    scores = {}
    for name in ("tapvid", "shards"):
        out = tmp_path / name
        assert main(["eval", "--checkpoint", str(tiny_checkpoint("offline")), "--data", str(benchmarks[name]),
                     "--max-videos", "1", "--no-cache", "--out", str(out)]) == 0
        (row,) = json.loads((out / "eval.json").read_text())["results"]
        scores[name] = row["per_video"][0]
    assert scores["tapvid"]["model"] == pytest.approx(scores["shards"]["model"], abs=1e-9)
    assert scores["tapvid"]["zero_motion"] == pytest.approx(scores["shards"]["zero_motion"], abs=1e-9)
    assert "offline" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_errors_are_one_line(tiny_checkpoint, benchmarks, tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v": {"video": np.zeros((2, 8, 8, 3), np.uint8), "points": Payload(),
                                         "occluded": np.zeros((1, 2), bool)}}))
    ckpt = str(tiny_checkpoint("online"))
    for args, words in ((["DATA=" + str(evil)], "refused to load"),
                        (["DATA=" + str(tmp_path / "missing.pkl")], "no TAP-Vid pickle matches"),
                        ([f"DATA={benchmarks['tapvid']}", "ARGS=modes=[fast]"], "modes must be"),
                        ([f"DATA={benchmarks['tapvid']}", "ARGS=itres=3"], "unknown config key 'itres'"),
                        ([f"DATA={benchmarks['tapvid']}", "ARGS=--format nope"], "unknown data format 'nope'")):
        proc = _make_eval(f"CKPT={ckpt}", *args)
        err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode != 0 and len(err) == 1 and words in err[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not marker.exists()
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(1024))
    proc = _make_eval(f"CKPT={junk}", f"DATA={benchmarks['tapvid']}")
    assert proc.returncode != 0 and "not a PyTorch checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


@pytest.mark.slow
def test_davis_masks_print_a_mask_consistency_table(tiny_checkpoint, davis_folder, benchmarks, tmp_path) -> None:
    """`make eval DATA=<DAVIS root>`: mask consistency per video, per group and overall, model and zero motion;
    no TAP-Vid columns for mask benchmarks; a TAP-Vid benchmark beside it keeps its own table."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = _make_eval(f"CKPT={tiny_checkpoint('online')}", f"DATA={davis_folder}/",
                      f"ARGS=out={out} cache_dir={cache}")
    assert proc.returncode == 0, proc.stderr
    table = [_cells(ln) for ln in proc.stdout.splitlines() if ln.startswith("|")]
    assert table[0] == ["benchmark", "predictor", "video", "group", "videos", "queries", "mask consistency",
                        "zero motion"]
    rows = table[2:]
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("goat", "animals", "1"), ("kite", "other", "1"), ("parkour", "people", "1"),
        ("mean", "people", "1"), ("mean", "animals", "1"), ("mean", "other", "1"), ("mean", "all", "3")]
    assert all(0 <= float(v) <= 100 for r in rows for v in r[6:])
    assert "AJ" not in proc.stdout and "delta_avg" not in proc.stdout
    (row,) = json.loads((out / "eval.json").read_text())["results"]
    assert row["metric"] == "mask_consistency" and row["format"] == "davis" and row["num_videos"] == 3
    assert row["keep_aspect"] and f"for {row['benchmark']} of short side" in proc.stdout  # the default for masks
    kite = row["per_video"][1]
    assert kite["num_frames"] == 8 and kite["num_queries"] > 0
    assert set(kite["model"]) == {"mask_consistency"}
    zero_all = np.mean([v["zero_motion"]["mask_consistency"] for v in row["per_video"]])
    assert row["zero_motion"]["mask_consistency"] == pytest.approx(zero_all)
    assert float(rows[-1][7]) == pytest.approx(100 * zero_all, abs=0.051)  # printed x100, one decimal
    # A TAP-Vid benchmark and a DAVIS root in one run: two tables, each benchmark in its own.
    from lightning_modules.cli import main

    assert main(["eval", "--checkpoint", str(tiny_checkpoint("online")), "--data", str(benchmarks["tapvid"]),
                 "--data", str(davis_folder), "--max-frames", "8", "--out", str(tmp_path / "both"),
                 f"cache_dir={cache}"]) == 0
    md = (tmp_path / "both" / "eval.md").read_text().splitlines()
    assert "of short side" in md[0] and "tapvid" not in md[0]  # only the mask benchmark kept its aspect ratio
    heads = [i for i, ln in enumerate(md) if ln.startswith("| benchmark")]
    assert len(heads) == 2 and "AJ" in md[heads[0]] and "mask consistency" in md[heads[1]]
    assert all("tapvid-0" in ln for ln in md[heads[0] + 2: heads[1]] if ln.startswith("|"))


@pytest.mark.slow
def test_bad_davis_folder_is_one_error_line_naming_the_sequence(tiny_checkpoint, davis_folder, tmp_path) -> None:
    broken = tmp_path / "davis"
    shutil.copytree(davis_folder, broken)
    (broken / "Annotations" / "480p" / "kite" / "00005.png").unlink()
    proc = _make_eval(f"CKPT={tiny_checkpoint('online')}", f"DATA={broken}", "ARGS=cache=false")
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and err == [
        "error: benchmark davis: sequence kite: 8 frames in JPEGImages/480p but 7 masks in Annotations/480p (no mask "
        "for frame 00005.jpg)"], proc.stderr
    assert "Traceback" not in proc.stderr
