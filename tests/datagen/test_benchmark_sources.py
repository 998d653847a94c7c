"""Benchmark readers of datagen.formats on files the tests write: TAP-Vid pickles (DAVIS dict with uint8 frames,
Kinetics-style list with JPEG frames), sparse keypoint .npz files; payloads are refused before they run."""
from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from datagen.formats.sample import TrackSample
from datagen.formats.shard_io import CorruptSampleError
from datagen.formats import detect_format, open_source, writer


def _video(T=5, H=20, W=30):
    """Smooth colour ramps (JPEG keeps them within a few grey levels)."""
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return np.stack([x * 8, y * 12, 40 * t + x + y], axis=-1).clip(0, 255).astype(np.uint8)


def _jpegs(video):
    from PIL import Image

    out = []
    for frame in video:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def test_tapvid_davis_dict_and_kinetics_list(tmp_path):
    video = _video()
    points = np.array([[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.25, 0.75], [0.1, 0.2]]], np.float32)  # (1, 5, 2)
    occluded = np.array([[False, True, False, False, True]])
    (tmp_path / "davis.pkl").write_bytes(pickle.dumps({"bear": {"video": video, "points": points,
                                                                "occluded": occluded}}))
    (tmp_path / "kinetics_0.pkl").write_bytes(pickle.dumps(
        [{"video": _jpegs(video), "points": points, "occluded": occluded, "video_id": "abc"}] * 2))
    assert detect_format(str(tmp_path / "davis.pkl")) == "tapvid"
    (bear,) = open_source(str(tmp_path / "davis.pkl"))
    assert isinstance(bear, TrackSample) and bear.key == "bear"
    np.testing.assert_array_equal(bear.video, video)
    # normalised (x, y) -> pixels x (W - 1), y (H - 1): (0.5, 0.5) is the centre of a 30x20 frame
    np.testing.assert_allclose(bear.tracks[:, 0], [[0, 0], [14.5, 9.5], [29, 19], [7.25, 14.25], [2.9, 3.8]],
                               rtol=1e-6)
    np.testing.assert_array_equal(bear.visibility[:, 0], ~occluded[0])
    kinetics = list(open_source(str(tmp_path / "kinetics_*.pkl")))
    assert [s.key for s in kinetics] == ["kinetics_0-0000", "kinetics_0-0001"]
    assert kinetics[0].video.shape == video.shape
    assert np.abs(kinetics[0].video.astype(int) - video).mean() < 4  # JPEG-decoded frames
    both = open_source(str(tmp_path))  # a folder of pickles
    assert both.format == "tapvid" and len(list(both)) == 3


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_tapvid_pickle_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"bear": {"video": _video(), "points": np.zeros((1, 5, 2)),
                                            "occluded": _Payload(marker)}}))
    with pytest.raises(CorruptSampleError, match=r"refused to load.*posix.system") as err:
        list(open_source(str(path)))
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_bad_tapvid_records_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"v": {"video": _video(), "points": np.zeros((2, 4, 2)), "occluded": np.zeros((2, 4))}}))
    with pytest.raises(CorruptSampleError, match=r"bad.pkl:v.*do not fit \(N, 5, 2\)"):
        list(open_source(str(path)))
    path.write_bytes(pickle.dumps({"v": {"video": [b"not a jpeg"], "points": np.zeros((1, 1, 2)),
                                         "occluded": np.zeros((1, 1))}}))
    with pytest.raises(CorruptSampleError, match="neither a uint8 array nor decodable images"):
        list(open_source(str(path)))


def _sparse_arrays():
    points = np.full((2, 5, 2), np.nan, np.float32)
    points[0, [0, 2, 4]] = [[1, 2], [3, 4], [5, 6]]
    points[1, [1, 3]] = [[7, 8], [9, 10]]
    visible = np.array([[True, True, True, False, False], [False, True, True, False, True]])
    return {"video": _video(), "points": points, "visible": visible,
            "seg_area": np.array([100, np.nan, 64, 49, 36], np.float32), "query_frame": np.array([0, 1])}


def test_sparse_npz_layout(tmp_path):
    np.savez(tmp_path / "dog.npz", **_sparse_arrays())
    assert detect_format(str(tmp_path / "dog.npz")) == "sparse_npz"
    (dog,) = open_source(str(tmp_path))
    assert dog.key == "dog" and dog.tracks.shape == (5, 2, 2)
    # unlabelled -> NaN and never visible (the file's flag under a NaN is ignored)
    assert np.isnan(dog.tracks[1, 0]).all() and not dog.visibility[1, 0]
    assert not dog.visibility[4, 1] and dog.visibility[1, 1]
    np.testing.assert_array_equal(dog.query_frames, [0, 1])
    assert dog.meta["seg_area"] == [100.0, None, 64.0, 49.0, 36.0]
    out = tmp_path / "copy"
    assert writer("sparse_npz")([dog], out) == 1
    (back,) = open_source(str(out))
    np.testing.assert_array_equal(back.tracks, dog.tracks)
    np.testing.assert_array_equal(back.visibility, dog.visibility)
    assert back.meta["seg_area"] == dog.meta["seg_area"] and list(back.query_frames) == [0, 1]


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("visible"), "missing array(s) visible"),
    (lambda a: a.update(points=a["points"][:, :3]), "points must be float (N, 5, 2)"),
    (lambda a: a.update(visible=a["visible"].astype(np.uint8)), "visible must be bool"),
    (lambda a: a.update(seg_area=np.ones(3)), "seg_area must be numeric (5,)"),
    (lambda a: a.update(query_frame=np.array([0.5, 1.0])), "query_frame must be integer"),
])
def test_sparse_npz_errors_name_the_array(tmp_path, change, words):
    arrays = _sparse_arrays()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CorruptSampleError) as err:
        list(open_source(str(tmp_path / "bad.npz")))
    assert words in str(err.value) and "bad.npz" in str(err.value) and "\n" not in str(err.value)


def test_sparse_npz_object_array_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    arrays = _sparse_arrays()
    arrays["points"] = np.array([_Payload(marker)], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(CorruptSampleError, match="not a readable .npz of arrays"):
        list(open_source(str(tmp_path / "evil.npz")))
    assert not marker.exists()
