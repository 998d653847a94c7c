"""`python -m tracker track`: one-line errors for bad inputs, and an end-to-end run on a real clip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=None, extra_env=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tracker", "track", *map(str, args)],
        cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def clip(shared_dir) -> Path:
    path = shared_dir / "data" / "bear.mp4"
    if not path.is_file():
        pytest.skip(f"demo clip not found at {path}")
    return path


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_in_process(capsys, *args):
    """Same entry point without a new interpreter (cheaper, for the many variants of one error class)."""
    from tracker.cli import main

    try:
        code = main(["track", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return _Result(code, out.out, out.err)


def assert_user_error(proc, *words):
    """Exit status 2, exactly one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tracker: error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_cli_errors_are_user_errors_with_usage_status():
    """One kind of expected failure across the project: CLIError is a tracker.common.errors.UserError (exit 2)."""
    from tracker.cli import CLIError
    from tracker.common.errors import UserError

    err = CLIError("bad\n  input")
    assert isinstance(err, UserError) and err.exit_code == 2 and str(err) == "bad input"


def test_missing_video(tmp_path):
    assert_user_error(run_cli(tmp_path / "nope.mp4", "--checkpoint", __file__), "not found", "nope.mp4")


def test_undecodable_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 1000)
    assert_user_error(run_cli(bad, "--checkpoint", __file__), "bad.mp4")


def test_missing_checkpoint(clip, tmp_path):
    assert_user_error(run_cli(clip, "--checkpoint", tmp_path / "none.pth"), "checkpoint not found", "none.pth")


def test_unknown_variant(clip):
    assert_user_error(run_cli(clip, "--variant", "sideways"), "unknown variant", "sideways")


def test_cuda_unavailable(clip):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_user_error(run_cli(clip, "--device", "cuda"), "CUDA is not available")


def test_bad_option_value(clip, capsys):
    assert_user_error(run_in_process(capsys, clip, "--grid", "many"), "--grid")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("t,x,y\n0,10,10\n\n3,10\n", ["queries.csv:4", "3 values"]),
        ("0,10,10\n1,abc,5\n", ["queries.csv:2", "not numbers"]),
        ("0.5,10,10\n", ["queries.csv:1", "whole frame"]),
        ("t,x,y\n\n", ["no queries"]),
    ],
)
def test_bad_csv(clip, tmp_path, content, words, capsys):
    csv = tmp_path / "queries.csv"
    csv.write_text(content)
    assert_user_error(run_in_process(capsys, clip, "--queries", csv, "--max-frames", 4), *words)


def test_bad_csv_subprocess(clip, tmp_path):
    csv = tmp_path / "queries.csv"
    csv.write_text("t,x,y\n0,10,10\n\n3,10\n")
    assert_user_error(run_cli(clip, "--queries", csv, "--max-frames", 4), "queries.csv:4")


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("4,10,10", ["queries.csv:3", "frame 4", "0..3"]),  # --max-frames 4 -> frames 0..3
        ("-1,10,10", ["queries.csv:3", "frame -1"]),
        ("0,854,10", ["queries.csv:3", "outside the 854x480 frame"]),
        ("0,10,-0.5", ["queries.csv:3", "outside"]),
    ],
)
def test_query_outside_video(clip, tmp_path, row, words, capsys):
    csv = tmp_path / "queries.csv"
    csv.write_text(f"t,x,y\n0,5,5\n{row}\n")
    assert_user_error(run_in_process(capsys, clip, "--queries", csv, "--max-frames", 4), *words)


def test_query_outside_video_subprocess(clip, tmp_path):
    csv = tmp_path / "queries.csv"
    csv.write_text("0,5,5\n7,10,10\n")
    assert_user_error(run_cli(clip, "--queries", csv, "--max-frames", 4), "queries.csv:2", "frame 7")


def test_missing_queries_file(clip, tmp_path, capsys):
    assert_user_error(run_in_process(capsys, clip, "--queries", tmp_path / "q.csv"), "queries file not found")


# ---------------------------------------------------------------------------------------------------------------
# End to end: fixture weights saved as an official-format checkpoint, the real demo clip, CLI vs Python API.

MAX_FRAMES = 12
GRID = 5


@pytest.fixture(scope="module")
def official_checkpoint(cotracker3_fixtures, tmp_path_factory) -> Path:
    """The fp16 fixture weights converted to float32 and saved like the released `scaled_offline.pth`."""
    import torch
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(str(cotracker3_fixtures / "weights_offline.safetensors")).items()}
    path = tmp_path_factory.mktemp("ckpt") / "scaled_offline.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def cli_run(clip, official_checkpoint, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("cli")
    proc = run_cli(
        clip, "--max-frames", MAX_FRAMES, "--grid", GRID, "--checkpoint", official_checkpoint,
        "--out", out_dir / "t.npz", "--viz", out_dir / "o.mp4",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out_dir, proc


@pytest.mark.slow
def test_cli_end_to_end(cli_run, clip, official_checkpoint):
    import torch

    import tracker
    from tracker.predictor import track
    from tracker.video import read_video

    out_dir, proc = cli_run
    assert "Traceback" not in proc.stderr
    frames, fps = read_video(clip, max_frames=MAX_FRAMES)
    T, H, W = frames.shape[:3]
    n = GRID * GRID

    with np.load(out_dir / "t.npz") as data:
        assert sorted(data.files) == ["confidence", "queries", "tracks", "visibility"]
        tracks, vis, conf, queries = (data[k] for k in ("tracks", "visibility", "confidence", "queries"))
    assert tracks.shape == (T, n, 2) and tracks.dtype == np.float32
    assert vis.shape == (T, n) and vis.dtype == bool
    assert conf.shape == (T, n) and conf.dtype == np.float32
    assert queries.shape == (n, 3) and queries.dtype == np.float32
    assert np.isfinite(tracks).all() and ((conf >= 0) & (conf <= 1)).all()
    # The grid covers the frame inside a margin; queries are (t, x, y) in input pixels at frame 0.
    assert (queries[:, 0] == 0).all()
    assert queries[:, 1].min() > 0 and queries[:, 1].max() < W - 1
    assert queries[:, 2].min() > 0 and queries[:, 2].max() < H - 1
    # Offline predictor: the query frame is set to the query position and marked visible.
    np.testing.assert_allclose(tracks[0], queries[:, 1:], atol=1e-3)
    assert vis[0].all()
    # Random-init weights do not track, but stay near the frame.
    assert (tracks[..., 0] > -0.5 * W).all() and (tracks[..., 0] < 1.5 * W).all()

    # Same numbers through the Python API on the same frames.
    torch.manual_seed(0)
    model = tracker.load_tracker("offline", official_checkpoint)
    with torch.no_grad():
        pred = track(model, frames, grid_size=GRID)
    np.testing.assert_allclose(pred.tracks[0].numpy(), tracks, atol=1e-4)
    np.testing.assert_array_equal(pred.visibility[0].numpy(), vis)
    np.testing.assert_allclose(pred.confidence[0].numpy(), conf, atol=1e-6)

    # The overlay: same size and length as the input, at its frame rate, and visibly drawn on.
    overlay, overlay_fps = read_video(out_dir / "o.mp4")
    assert overlay.shape == frames.shape
    assert overlay_fps == pytest.approx(fps)
    changed = np.abs(overlay.astype(int) - frames).sum(-1) > 60
    assert changed[0].mean() > 0.002  # 25 dots of radius ~4 on 854x480 cover ~0.3 %
    x, y = np.round(tracks[0, 0]).astype(int)
    assert changed[0, y - 1 : y + 2, x - 1 : x + 2].all()  # a visible dot at the first track's position


@pytest.mark.slow
def test_cli_queries_csv_end_to_end(clip, official_checkpoint, tmp_path):
    csv = tmp_path / "q.csv"
    csv.write_text("t,x,y\n0,100.5,200\n\n3,400,100\n")
    proc = run_cli(
        clip, "--max-frames", 4, "--queries", csv, "--checkpoint", official_checkpoint,
        "--out", tmp_path / "q.npz", "--no-backward",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "q.npz") as data:
        np.testing.assert_array_equal(data["queries"], [[0, 100.5, 200], [3, 400, 100]])
        assert data["tracks"].shape == (4, 2, 2)
        assert data["visibility"][[0, 3], [0, 1]].all()
        # Query correction: each track passes through its query at its query frame.
        np.testing.assert_allclose(data["tracks"][0, 0], [100.5, 200], atol=1e-3)
        np.testing.assert_allclose(data["tracks"][3, 1], [400, 100], atol=1e-3)
