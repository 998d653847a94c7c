"""Video IO: a real mp4 round trip through PyAV, and clear errors for bad files."""
from __future__ import annotations

import errno

import numpy as np
import pytest

from tracker.video import VideoReadError, read_video, write_video


def _clip(num_frames=10, height=48, width=64):
    """Smooth gradient background with a bright square moving right (compresses well, easy to check)."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = (x * 255 // (width - 1)).astype(np.uint8)
        frames[t, ..., 1] = (y * 255 // (height - 1)).astype(np.uint8)
        frames[t, ..., 2] = 60
        frames[t, 10:20, 4 + 4 * t : 14 + 4 * t] = 250
    return frames


def test_write_then_read_round_trip(tmp_path):
    frames = _clip()
    path = write_video(tmp_path / "clip.mp4", frames, fps=12.5)
    assert path == tmp_path / "clip.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no temporary file left behind
    decoded, fps = read_video(path)
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    assert fps == pytest.approx(12.5)
    # Lossy codec: small average error, and the moving square is where it should be in every frame.
    assert np.abs(decoded.astype(int) - frames).mean() < 4
    for t in range(len(frames)):
        assert decoded[t, 12:18, 6 + 4 * t : 12 + 4 * t].min() > 200
    first4, _ = read_video(path, max_frames=4)
    np.testing.assert_array_equal(first4, decoded[:4])


def test_full_disk_is_an_os_error_and_leaves_nothing(tmp_path):
    """A disk that fills up during the encoding is the OSError it is (the CLI reports it in one line), and neither
    the video nor its temporary file is left (tracker.common.atomic.atomic_path)."""
    from tests.conftest import small_disk

    with small_disk(tmp_path / "disk", size="256k") as disk:
        noise = np.random.default_rng(0).integers(0, 256, (20, 240, 320, 3), dtype=np.uint8)  # megabytes encoded
        with pytest.raises(OSError) as err:
            write_video(disk / "clip.mp4", noise, fps=10)
        assert err.value.errno == errno.ENOSPC
        assert not any(disk.iterdir())


def test_odd_size_is_padded_to_even(tmp_path):
    frames = _clip(3, 33, 47)
    decoded, _ = read_video(write_video(tmp_path / "odd.mp4", frames, fps=10))
    assert decoded.shape == (3, 34, 48, 3)
    assert np.abs(decoded[:, :33, :47].astype(int) - frames).mean() < 6


def test_write_rejects_bad_frames_without_leaving_files(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", _clip().astype(np.float32), fps=10)
    with pytest.raises(ValueError, match="T, H, W, 3"):
        write_video(tmp_path / "a.mp4", np.zeros((4, 8, 8), np.uint8), fps=10)
    assert list(tmp_path.iterdir()) == []


def _assert_one_line(err: VideoReadError, *words: str):
    msg = str(err)
    assert "\n" not in msg
    for word in words:
        assert word in msg


def test_missing_file(tmp_path):
    with pytest.raises(VideoReadError) as info:
        read_video(tmp_path / "nope.mp4")
    _assert_one_line(info.value, "not found", "nope.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "text.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoReadError) as info:
        read_video(path)
    _assert_one_line(info.value, "text.mp4")


def test_corrupt_video(tmp_path):
    good = write_video(tmp_path / "good.mp4", _clip(), fps=10).read_bytes()
    # Keep the header, destroy the compressed frames.
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(good[:64] + bytes(len(good) - 64))
    with pytest.raises(VideoReadError) as info:
        read_video(bad)
    _assert_one_line(info.value, "corrupt.mp4")
    # Truncated to a third: the index (moov atom at the end) is missing.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good[: len(good) // 3])
    with pytest.raises(VideoReadError):
        read_video(cut)


def test_no_video_stream(tmp_path):
    import av

    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoReadError) as info:
        read_video(path)
    _assert_one_line(info.value, "no video stream")


def test_folder_of_frames(tmp_path):
    """A folder of JPEG/PNG frames (DAVIS's JPEGImages layout) reads in name order, at FOLDER_FPS."""
    from PIL import Image

    from tracker.video import FOLDER_FPS

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 10, 12, 3), dtype=np.uint8)
    for i in (2, 0, 1):  # written out of order
        Image.fromarray(frames[i]).save(tmp_path / f"{i:05d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    got, fps = read_video(tmp_path)
    assert fps == FOLDER_FPS and got.dtype == np.uint8
    np.testing.assert_array_equal(got, frames)
    assert read_video(tmp_path, max_frames=2)[0].shape == (2, 10, 12, 3)


@pytest.mark.parametrize("case", ["empty", "corrupt", "size"])
def test_bad_frame_folder_is_one_line(tmp_path, case):
    from PIL import Image

    if case == "corrupt":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "00000.png")
        (tmp_path / "00001.jpg").write_bytes(b"not a jpeg")
    elif case == "size":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "00000.png")
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "00001.png")
    with pytest.raises(VideoReadError) as info:
        read_video(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path) in msg
    assert {"empty": "no frames", "corrupt": "00001.jpg", "size": "00001.png"}[case] in msg
