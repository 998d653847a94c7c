"""Video IO: decode video files (PyAV) or folders of frames (PIL) to uint8 RGB arrays, encode arrays to mp4
(atomically)."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from tracker.common.atomic import atomic_path
from tracker.common.errors import one_line


class VideoReadError(RuntimeError):
    """A video file is missing, is not a video, cannot be decoded or has no frames (one-line message)."""


# A folder of frames (e.g. DAVIS's JPEGImages/480p/<sequence>) carries no frame rate: DAVIS was filmed at 24 fps.
FOLDER_FPS = 24.0
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_frame_folder(path: Path, max_frames: int | None = None) -> np.ndarray:
    """The images of a folder in name order (JPEG/PNG, all one size) -> np.uint8 (T, H, W, 3) RGB.
    VideoReadError (one line naming the file) for an empty folder, an unreadable image or a size mismatch."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise VideoReadError(f"no frames (*.jpg, *.jpeg, *.png) in folder {path}")
    frames: list[np.ndarray] = []
    for f in files[:max_frames]:
        try:
            with Image.open(f) as im:
                frame = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise VideoReadError(f"cannot read frame {f}: {one_line(err)}") from None
        if frames and frame.shape != frames[0].shape:
            raise VideoReadError(f"frame {f} is {frame.shape[1]}x{frame.shape[0]}, the folder's first frame "
                                 f"{frames[0].shape[1]}x{frames[0].shape[0]}")
        frames.append(frame)
    return np.stack(frames)


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode the first video stream of `path`, or the frames of a folder of images (FOLDER_FPS).

    Returns (frames np.uint8 (T, H, W, 3) RGB, fps float); at most `max_frames` frames when given.
    Raises VideoReadError for a missing file, a file that is not a video, decoding errors, or zero frames.
    """
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not path.exists():
        raise VideoReadError(f"video not found: {path}")
    if path.is_dir():
        return read_frame_folder(path, max_frames), FOLDER_FPS
    if not path.is_file():
        raise VideoReadError(f"not a file: {path}")
    import av  # lazy: the model code must import without PyAV
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoReadError(f"cannot open {path} as a video: {one_line(err)}") from None
    frames: list[np.ndarray] = []
    try:
        if not container.streams.video:
            raise VideoReadError(f"no video stream in {path}")
        stream = container.streams.video[0]
        # Frame-level threading: decoding is the bottleneck for long clips.
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except (av.FFmpegError, ValueError) as err:
            if not frames:
                raise VideoReadError(f"cannot decode {path}: {one_line(err)}") from None
            # A truncated tail: keep the frames that decoded (players do the same).
    finally:
        container.close()
    if not frames:
        raise VideoReadError(f"no frames could be decoded from {path}")
    if fps <= 0 or not np.isfinite(fps):
        fps = 30.0
    return np.stack(frames), fps


def _pick_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Encode frames np.uint8 (T, H, W, 3) RGB to an mp4 at `path` (H.264 yuv420p with libx264, else MPEG-4).

    Odd heights/widths are padded by one replicated row/column (yuv420p needs even sizes). The file is written
    atomically (tracker.common.atomic: a hidden temporary file in the same folder, renamed into place), so `path`
    is never half-written.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = _pick_codec()
    # By name, not through a file object: PyAV reports a full disk as an OSError only when FFmpeg writes the file.
    with atomic_path(path, hidden=True) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = 8_000_000
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    return path
