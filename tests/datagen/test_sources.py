"""datagen.formats on real files: our shards <-> the CoTracker3 Kubric layout (inverted visibility), TAP-Vid export,
a payload pickle refused, corrupt and missing files as one-line errors, through the library and `python -m datagen`."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datagen.formats.safe_pickle import load_pickle
from datagen.formats.sample import TrackSample
from datagen.formats.shard_io import CorruptSampleError
from datagen.formats.shards import read_shards
from datagen.formats import READERS, SourceError, SourceNotFoundError, detect_format, open_source, writer

REPO = Path(__file__).resolve().parents[2]


def _cli(*args, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _assert_same(a: TrackSample, b: TrackSample, *, meta: bool = True) -> None:
    assert a.key == b.key
    for name in ("video", "tracks", "visibility", "tracks3d", "query_frames"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    if meta:
        assert {k: v for k, v in b.meta.items() if k != "cotracker3_fields"} == a.meta


# ---------------------------------------------------------------------------------------------- real round trips
@pytest.mark.slow
def test_shards_to_cotracker3_layout_and_back_are_equal(tiny_shards, tmp_path):
    originals = list(read_shards(tiny_shards))
    out = tmp_path / "kubric"
    proc = _cli("export", "cotracker3_kubric", tiny_shards, out)
    assert proc.returncode == 0, proc.stderr
    assert "exported 3 sample(s)" in proc.stdout
    # The official layout: <seq>/<seq>.npy (a pickled dict) + <seq>/frames/*.png, visibility stored as OCCLUSION.
    # The official loader takes every folder of the root as a sequence; the only other entry is the export's lock.
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [s.key for s in originals]
    assert [p.name for p in out.iterdir() if not p.is_dir()] == [".trackforge.lock"]
    for s in originals:
        seq = out / s.key
        assert sorted(p.name for p in (seq / "frames").iterdir()) == [f"{t:03d}.png" for t in range(s.num_frames)]
        annot = np.load(seq / f"{s.key}.npy", allow_pickle=True).item()  # how the official loader reads it
        assert annot["coords"].shape == (s.num_tracks, s.num_frames, 2)
        np.testing.assert_array_equal(annot["coords"], s.tracks.transpose(1, 0, 2))
        assert annot["visibility"].dtype == bool
        np.testing.assert_array_equal(annot["visibility"], ~s.visibility.T)  # inverted: True = occluded
        assert annot["visibility"].any() and not annot["visibility"].all()
    assert detect_format(str(out)) == "cotracker3_kubric"
    src = open_source(str(out))
    info = src.info()
    assert (info.num_items, info.num_frames, info.height, info.width) == (3, 6, 64, 64)
    back = list(src)
    assert len(back) == 3
    for a, b in zip(originals, back):
        _assert_same(a, b)
        assert b.meta["cotracker3_fields"] == ["coords", "visibility"]
    # ... and on to our shards again (any source -> any writer)
    proc = _cli("export", "shards", out, tmp_path / "shards", "--samples-per-shard", 2, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    again = list(open_source(str(tmp_path / "shards")))
    assert [s.key for s in again] == [s.key for s in originals]
    for a, b in zip(originals, again):
        _assert_same(a, b, meta=False)


@pytest.mark.slow
def test_tapvid_export_is_normalised_with_occlusion(tiny_shards, tmp_path):
    originals = list(read_shards(tiny_shards))
    proc = _cli("export", "tapvid", tiny_shards, tmp_path / "t.pkl", "--max-samples", 2)
    assert proc.returncode == 0, proc.stderr
    data = load_pickle(tmp_path / "t.pkl")  # a plain-data pickle: the restricted unpickler reads it
    assert list(data) == [s.key for s in originals[:2]]
    for s in originals[:2]:
        rec = data[s.key]
        np.testing.assert_array_equal(rec["video"], s.video)
        assert rec["points"].shape == (s.num_tracks, s.num_frames, 2)
        np.testing.assert_allclose(rec["points"] * [s.width - 1, s.height - 1], s.tracks.transpose(1, 0, 2),
                                   rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(rec["occluded"], ~s.visibility.T)
        half = 0.5 / (s.width - 1)  # visible = inside the image, up to half a pixel beyond the edge centres
        seen = rec["points"][~rec["occluded"]]
        assert -half <= seen.min() < 0.2 and 0.8 < seen.max() <= 1 + half


# ---------------------------------------------------------------------------------------------- the official layout
def _official_sequence(root: Path, name: str, T: int = 5, N: int = 7, H: int = 24, W: int = 32, extra=None) -> dict:
    """A sequence as the public CoTracker3_Kubric set stores it: float64 coords, an occlusion flag named
    'visibility', extra fields the official loader ignores, PNG frames."""
    from PIL import Image

    rng = np.random.default_rng(len(name))
    coords = rng.uniform(0, [W - 1, H - 1], (N, T, 2))
    occluded = rng.random((N, T)) < 0.3
    occluded[0] = True  # never visible
    occluded[1, :3] = True  # visible from frame 3
    video = rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8)
    seq = root / name
    (seq / "frames").mkdir(parents=True)
    for t in range(T):
        Image.fromarray(video[t]).save(seq / "frames" / f"{t:03d}.png")
    annot = {"coords": coords, "visibility": occluded, "depth": rng.random((N, T)).astype(np.float32),
             **(extra or {})}
    np.save(seq / f"{name}.npy", np.array(annot, dtype=object), allow_pickle=True)
    return {"video": video, "coords": coords, "occluded": occluded}


def test_reads_the_official_layout_with_its_inverted_visibility(tmp_path):
    made = {n: _official_sequence(tmp_path, n) for n in ("0001", "0000")}
    src = open_source(str(tmp_path), "cotracker3_kubric")
    assert src.items == [str(tmp_path / "0000"), str(tmp_path / "0001")]
    for sample in src:
        ref = made[sample.key]
        np.testing.assert_array_equal(sample.video, ref["video"])
        assert sample.tracks.dtype == np.float32 and sample.tracks.shape == (5, 7, 2)
        np.testing.assert_allclose(sample.tracks, ref["coords"].transpose(1, 0, 2).astype(np.float32))
        np.testing.assert_array_equal(sample.visibility, ~ref["occluded"].T)
        assert sample.tracks3d is None and sample.query_frames is None
        assert sample.meta["cotracker3_fields"] == ["coords", "depth", "visibility"]  # depth is ignored, as upstream
        assert sample.query_points[1, 0] == 3  # first visible frame
    # One sequence folder is a source of its own.
    one = open_source(str(tmp_path / "0001"))
    assert one.format == "cotracker3_kubric" and [s.key for s in one] == ["0001"]


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_payload_in_the_npy_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    _official_sequence(tmp_path / "root", "evil", extra={"x": _Payload(marker)})
    src = open_source(str(tmp_path / "root"))
    with pytest.raises(CorruptSampleError, match=r"evil.*refused to load.*posix\.system|evil.*refused.*system"):
        list(src)
    assert not marker.exists()
    proc = _cli("export", "tapvid", tmp_path / "root", tmp_path / "t.pkl", "--no-progress")
    assert proc.returncode == 1 and not marker.exists()
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: corrupt sample") and "refused" in proc.stderr
    assert not (tmp_path / "t.pkl").exists()


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    _official_sequence(tmp_path, "a")
    (tmp_path / "a" / "frames" / "004.png").unlink()
    with pytest.raises(CorruptSampleError, match="4 frame image.* coords has 5 frames"):
        list(open_source(str(tmp_path)))
    _official_sequence(tmp_path / "r2", "b")
    (tmp_path / "r2" / "b" / "frames" / "002.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CorruptSampleError, match="cannot read 002.png"):
        list(open_source(str(tmp_path / "r2")))
    _official_sequence(tmp_path / "r3", "c")
    (tmp_path / "r3" / "c" / "c.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CorruptSampleError, match="not a .npy file"):
        list(open_source(str(tmp_path / "r3")))
    _official_sequence(tmp_path / "r4", "d")
    np.save(tmp_path / "r4" / "d" / "d.npy", np.array({"coords": np.zeros((7, 5, 2))}, dtype=object))
    with pytest.raises(CorruptSampleError, match="lacks visibility"):
        list(open_source(str(tmp_path / "r4")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="cannot tell the format"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceNotFoundError, match="no CoTracker3 Kubric sequences"):
        open_source(str(tmp_path / "empty"), "cotracker3_kubric").items
    with pytest.raises(SourceNotFoundError, match="no shards match"):
        open_source(str(tmp_path / "nothing-*.tar"), "shards").items
    with pytest.raises(SourceError, match="unknown data format 'movi'"):
        open_source(str(tmp_path), "movi")
    for args in (["export", "tapvid", tmp_path / "missing", tmp_path / "x.pkl"],
                 ["export", "cotracker3_kubric", tmp_path / "r2", tmp_path / "out"]):
        proc = _cli(*args)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert set(READERS) == {"shards", "davis", "cotracker3_kubric", "tapvid", "sparse_npz"}


def test_writer_restores_tracks3d_and_query_frames_and_replaces_sequences(tmp_path):
    rng = np.random.default_rng(0)
    tracks = rng.uniform(0, 9, (4, 3, 2)).astype(np.float32)
    tracks[1, 2] = np.nan  # unlabelled: stays NaN, flagged occluded
    s = TrackSample(video=rng.integers(0, 255, (4, 10, 12, 3), dtype=np.uint8), tracks=tracks,
                    visibility=np.ones((4, 3), bool), tracks3d=rng.normal(size=(4, 3, 3)).astype(np.float32),
                    query_frames=np.array([0, 2, 3]), key="a/b c", meta={"fps": 12, "nested": {"k": [1, 2]}})
    out = tmp_path / "out"
    assert writer("cotracker3_kubric")([s], out) == 1
    assert writer("cotracker3_kubric")([s], out) == 1  # same name again: replaced, no temporary left
    # the sequence and the export's lock file (hidden, not a folder: the official loader lists folders only)
    assert sorted(p.name for p in out.iterdir()) == [".trackforge.lock", "a_b_c"]
    annot = np.load(out / "a_b_c" / "a_b_c.npy", allow_pickle=True).item()
    assert annot["visibility"][2, 1] and np.isnan(annot["coords"][2, 1]).all()
    (back,) = open_source(str(out))
    np.testing.assert_array_equal(back.tracks, s.tracks)
    np.testing.assert_array_equal(back.visibility, s.visibility)
    np.testing.assert_array_equal(back.tracks3d, s.tracks3d)
    np.testing.assert_array_equal(back.query_frames, [0, 2, 3])
    assert back.meta["nested"] == {"k": [1, 2]} and json.dumps(back.meta)
    rec = pickle.loads(pickle.dumps(open_source(str(out))))  # sources are picklable (DataLoader workers)
    assert rec.items == [str(out / "a_b_c")]
