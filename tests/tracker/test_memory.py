"""Bounded memory: the request estimator and its refusals (predictors and the CLI), the streaming online predictor,
and the malloc setting of CPU inference."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tracker.memory import InsufficientMemoryError, check_tracking_memory, estimate_tracking_memory
from tracker.model import CoTracker3Offline, CoTracker3Online
from tracker.predictor import OfflinePredictor, OnlinePredictor, track

REPO = Path(__file__).resolve().parents[2]
TINY = dict(hidden_size=32, num_heads=4, time_depth=2, space_depth=1, num_virtual_tracks=8, latent_dim=16,
            corr_levels=2, corr_radius=2, corr_hidden=32, corr_dim=16, encoder_dims=(8, 8, 16, 16),
            encoder_fuse_dim=16, model_resolution=(32, 48))


def _python(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_estimate_scales_with_the_request():
    with torch.device("meta"):
        offline, online = CoTracker3Offline(), CoTracker3Online()
    est = lambda m, **kw: estimate_tracking_memory(m, **{"num_frames": 24, "num_points": 256,  # noqa: E731
                                                         "input_hw": (480, 854), **kw}).total
    # the offline model holds the whole clip: beyond a fixed part (encoder chunk, runtime), memory grows with T
    assert est(offline, num_frames=2400) > 5 * est(offline, num_frames=240) > 10 * est(offline, num_frames=24) / 4
    stream = est(online, mode="online_stream")
    assert est(online, mode="online_stream", num_frames=2400) - stream < 2400 * 480 * 854 * 3 + 2**30
    assert est(online, mode="online_windows", num_frames=2400) > 5 * est(online, mode="online_windows", num_frames=240)
    assert est(offline, num_points=2560) > est(offline) + 2256 * 4 * 49 * 128 * 4  # support patches per point
    assert est(offline, precision="bf16") < est(offline)


def test_absurd_request_is_refused_before_allocating():
    with torch.device("meta"):
        model = CoTracker3Offline()
    with pytest.raises(InsufficientMemoryError) as info:
        check_tracking_memory(model, num_frames=100, num_points=10**7, input_hw=(480, 854))
    err = info.value
    msg = str(err)
    assert "\n" not in msg and "needs about" in msg and "available" in msg and "at most about" in msg
    assert 0 < err.max_points < 10**7 and err.estimate.total > err.available
    assert isinstance(err, ValueError)  # callers that report ValueErrors in one line catch it
    # the largest request it names does fit
    check_tracking_memory(model, num_frames=100, num_points=err.max_points, input_hw=(480, 854))


def test_predictor_refuses_with_one_line_and_skip_switch(monkeypatch):
    torch.manual_seed(0)
    model = CoTracker3Offline(window_len=8, **TINY).eval()
    video = torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(InsufficientMemoryError, match="offline predictor tracking"):
        OfflinePredictor(model)(video, grid_size=20000)  # 400 million points
    monkeypatch.setenv("TRACKFORGE_MEMORY_CHECK", "0")
    est = check_tracking_memory(model, num_frames=2, num_points=4 * 10**8, input_hw=(16, 16))
    assert est.total > 2**40


def test_estimate_covers_a_real_request():
    """A real request (official architecture at a small model resolution) in a fresh process: the peak growth of
    its resident memory stays below the estimate and above a quarter of it (the estimate is useful, not wild)."""
    proc = _python("""
        import json, numpy as np, torch
        from tracker.memory import estimate_tracking_memory
        from tracker.model import CoTracker3Offline
        from tracker.predictor import OfflinePredictor
        torch.manual_seed(0)
        model = CoTracker3Offline(model_resolution=(96, 128)).eval()
        rng = np.random.default_rng(0)
        video = torch.from_numpy(rng.integers(0, 256, (1, 24, 3, 96, 128), dtype=np.uint8))
        queries = torch.from_numpy(rng.uniform(0, 90, (1, 64, 3)).astype(np.float32)); queries[..., 0] = 0
        est = estimate_tracking_memory(model, num_frames=24, num_points=64 + 36, input_hw=(96, 128)).total
        status = lambda key: next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
        before = status("VmRSS:")
        OfflinePredictor(model, iters=2)(video, queries)
        peak = status("VmHWM:")  # this image's peak (ru_maxrss would carry pytest's over fork + exec)
        print(json.dumps({"estimate": est, "growth": peak - before}))
    """)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["estimate"] / 4 < res["growth"] < res["estimate"], res


@pytest.fixture(scope="module")
def one_frame_clip(shared_dir, tmp_path_factory) -> Path:
    from tracker.video import read_video, write_video

    src = shared_dir / "data" / "bear.mp4"
    if not src.is_file():
        pytest.skip(f"demo clip not found at {src}")
    frames, fps = read_video(src, max_frames=1)
    path = tmp_path_factory.mktemp("clip") / "one_frame.mp4"
    write_video(path, frames, fps)
    return path


def test_cli_refuses_a_huge_grid_in_one_line(one_frame_clip, tmp_path):
    """`python -m tracker track clip.mp4 --grid 500` on a real 1-frame video: refused with the estimate and the flag
    to change, exit status 2, before any model is loaded (no weights to download here, small peak memory)."""
    proc = _python(f"""
        import sys
        from tracker.cli import main
        try:
            code = main(["track", {str(one_frame_clip)!r}, "--grid", "500", "--out", {str(tmp_path / "t.npz")!r}])
        except SystemExit as exc:
            code = exc.code
        peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        print("PEAK_RSS_MB", peak // 1024)
        sys.exit(code)
    """)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracker: error: "), proc.stderr
    assert "500x500 grid" in lines[0] and "needs about" in lines[0] and "--grid " in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "t.npz").exists()
    peak = int(proc.stdout.split("PEAK_RSS_MB")[1])
    assert peak < 2000, peak


@pytest.mark.parametrize("mode", ["online_stream", "offline"])
def test_frame_advice_only_where_frames_cost_memory(mode):
    """The streaming online predictor holds one window however long the clip: its refusal names a point count, never
    a frame limit. The offline one may advise a frame limit, but never one below 2 frames ("about 1 frames")."""
    with torch.device("meta"):
        model = (CoTracker3Online if mode == "online_stream" else CoTracker3Offline)(window_len=16)
    for frames in (1, 2, 3, 16, 200):
        with pytest.raises(InsufficientMemoryError) as info:
            check_tracking_memory(model, num_frames=frames, num_points=10**8, input_hw=(480, 854), mode=mode)
        err, msg = info.value, str(info.value)
        assert err.max_points > 0 and f"at most about {err.max_points} points" in msg, msg
        assert "about 1 frames" not in msg and "about 0 frames" not in msg, msg
        if mode == "online_stream":
            assert err.max_frames == 0 and "frames with these points" not in msg, msg
            assert "online model" not in msg, msg  # it is the online model
        else:
            assert err.max_frames == 0 or 2 <= err.max_frames < frames, (frames, err.max_frames)
            assert "the online model, whose memory does not grow with the clip length" in msg


def _tiny_checkpoint(path: Path, cls) -> Path:
    """A checkpoint as TrackForge training writes it (Lightning state dict + recorded architecture and kind)."""
    from tracker.checkpoint import METADATA_KEY, tracker_metadata

    torch.manual_seed(0)
    model = cls(window_len=8, **TINY)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                METADATA_KEY: tracker_metadata(model, (32, 48))}, path)
    return path


@pytest.mark.parametrize("kind", ["online", "offline"])
@pytest.mark.parametrize("frames", [1, 12])
def test_cli_advice_for_a_checkpoint_of_each_kind(tmp_path, capsys, kind, frames):
    """`track --grid 6000 --checkpoint <run>`: the kind is known only once the checkpoint is read; the refusal is
    one line with the largest grid that fits; frame limits only for the offline model and never below 2 frames."""
    from tracker.cli import main
    from tracker.video import write_video

    ckpt = _tiny_checkpoint(tmp_path / "run.ckpt", CoTracker3Online if kind == "online" else CoTracker3Offline)
    clip = write_video(tmp_path / "clip.mp4", np.random.default_rng(0).integers(0, 256, (frames, 64, 96, 3),
                                                                               dtype=np.uint8), 12.0)
    with pytest.raises(SystemExit) as exit_info:
        main(["track", str(clip), "--grid", "6000", "--checkpoint", str(ckpt), "--out", str(tmp_path / "t.npz")])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracker: error: tracking a 6000x6000 grid"), lines
    line = lines[0]
    grid = int(line.split("--grid ")[1].split()[0])
    assert 1 <= grid < 6000 and f"with the {kind} model" in line, line
    if kind == "online" or frames == 1:
        assert "--max-frames" not in line and "frames with these points" not in line, line
    else:
        assert "--max-frames 1 " not in line and "--max-frames 0" not in line, line
    assert "--variant online" not in line  # the checkpoint fixes the kind
    assert not (tmp_path / "t.npz").exists()


def test_streaming_predictor_takes_chunks_of_any_length():
    """An iterable of uneven uint8 chunks gives the same tracks as the whole clip at once (the stream is never
    assembled: at most a window of frames is held)."""
    torch.manual_seed(0)
    model = CoTracker3Online(window_len=8, **TINY).eval()
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.integers(0, 256, (1, 21, 3, 24, 40), dtype=np.uint8))
    queries = torch.tensor([[[0, 3.0, 4.0], [6, 30.0, 20.0], [15, 10.0, 10.0]]])
    whole = OnlinePredictor(model).track_video(video, queries, add_support_grid=True)
    parts = (video[:, a:b] for a, b in ((0, 3), (3, 4), (4, 13), (13, 21)))
    seen = []
    streamed = OnlinePredictor(model).track_video(parts, queries, add_support_grid=True,
                                                  progress=lambda d, t: seen.append(d))
    assert streamed.tracks.shape == whole.tracks.shape == (1, 21, 3, 2)
    assert torch.allclose(streamed.tracks, whole.tracks, atol=1e-4)
    assert torch.equal(streamed.visible, whole.visible)
    assert seen == [8, 12, 16, 20, 21]
    # and `track` keeps the input as it is (uint8) and converts window by window
    pred = track(model, video[0].permute(0, 2, 3, 1).numpy(), queries[0])
    assert torch.allclose(pred.tracks, whole.tracks, atol=1e-4)


def test_recycled_large_blocks_stops_page_faults():
    """Inside the block, repeatedly allocating and filling 64 MiB tensors reuses heap memory (few page faults);
    outside (glibc's default: fresh mmap'ed pages each time) every allocation faults its pages in again. Leaving the
    block hands the recycled memory back to the system (the process does not keep it resident)."""
    # The subprocess loads the predictors first, as every process that enters the block does (tracker.malloc alone
    # no longer loads them since tracker/__init__ is lazy). Measured with only torch and tracker.malloc loaded, about
    # 8 of the 20 allocations inside the block still grow the heap instead of reusing the freed block (the heap's
    # layout differs), against 1 of 20 with the predictors loaded.
    proc = _python("""
        import json, resource, torch
        import tracker.predictor
        from tracker.malloc import available, recycled_large_blocks
        rss = lambda: next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
        def faults():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(20):
                torch.empty(16 * 2**20).fill_(1.0)
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        plain = faults()
        with recycled_large_blocks() as active:
            inside = faults()
            held = rss()  # the last 64 MiB block stays in the heap, resident, for the next allocation
        released = rss()
        print(json.dumps({"available": available(), "active": active, "plain": plain, "inside": inside,
                          "held_mb": held / 2**20, "released_mb": released / 2**20}))
    """)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if not res["available"]:
        pytest.skip("glibc mallopt not available on this platform")
    assert res["active"] and res["plain"] > 20 * 16384 // 2  # ~16k 4 KiB pages per 64 MiB allocation
    assert res["inside"] < res["plain"] / 10, res
    assert res["held_mb"] - res["released_mb"] > 32, res  # malloc_trim on exit gave the block back
