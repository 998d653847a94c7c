"""TEMPORARY: evaluation readers until datagen.sources (branch i10-sources) lands; then they move there."""
from __future__ import annotations

import glob
import io
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from datagen.sample import TrackSample


def _paths(pattern: str, suffix: str) -> list[Path]:
    pattern = os.path.expanduser(str(pattern))
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, f"*{suffix}")
    paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    paths = [Path(p) for p in paths if Path(p).is_file()]
    if not paths:
        raise FileNotFoundError(f"no {suffix} file matches {pattern}")
    return paths


# ------------------------------------------------------------------------------------------------ TAP-Vid
def _decode_frames(video: Any, where: str) -> np.ndarray:
    """uint8 array (T, H, W, 3) or a list of JPEG/PNG bytes -> uint8 (T, H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(video, np.ndarray):
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"{where}: video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
        return video
    try:
        return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in video])
    except (UnidentifiedImageError, OSError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: frames are neither a uint8 array nor decodable images ({exc})") from None


def tapvid_sample(name: str, record: Any, where: str) -> TrackSample:
    """One TAP-Vid record {"video", "points" (N, T, 2) normalised (x, y), "occluded" (N, T)} -> TrackSample in
    pixels (x * (W - 1), y * (H - 1): the align-corners frame TAP-Vid's evaluation uses)."""
    if not isinstance(record, dict) or not all(k in record for k in ("video", "points", "occluded")):
        raise ValueError(f"{where}: record {name!r} lacks video/points/occluded")
    video = _decode_frames(record["video"], f"{where}: {name}")
    points = np.asarray(record["points"], dtype=np.float64)
    occluded = np.asarray(record["occluded"]).astype(bool)
    T, H, W, _ = video.shape
    if points.ndim != 3 or points.shape[1:] != (T, 2) or occluded.shape != points.shape[:2]:
        raise ValueError(f"{where}: {name}: points {points.shape} / occluded {occluded.shape} do not fit "
                         f"(N, {T}, 2) / (N, {T}) for {T} frames")
    tracks = (points * np.array([W - 1, H - 1])).transpose(1, 0, 2).astype(np.float32)
    return TrackSample(video=video, tracks=tracks, visibility=~occluded.T, key=str(name),
                       meta={"source": "tapvid", "file": where})


def read_tapvid(pattern: str) -> Iterator[TrackSample]:
    """TAP-Vid pickle(s): a dict {name: record} (DAVIS) or a list of records (Kinetics, RGB-Stacking; named
    <file stem>-<index>), read with the restricted unpickler (datagen.safe_pickle)."""
    from datagen.safe_pickle import load_pickle

    for path in _paths(pattern, ".pkl"):
        data = load_pickle(path)
        if isinstance(data, dict):
            items = data.items()
        elif isinstance(data, list):
            items = ((f"{path.stem}-{i:04d}", r) for i, r in enumerate(data))
        else:
            raise ValueError(f"{path}: a TAP-Vid pickle holds a dict or a list of records, not {type(data).__name__}")
        for name, record in items:
            yield tapvid_sample(str(name), record, str(path))


# ----------------------------------------------------------------------------------- sparse keypoints (npz)
def sparse_npz_sample(path: Path) -> TrackSample:
    """One video of sparse keypoint annotations (docs/evaluation.md):
    video (T, H, W, 3) uint8; points (N, T, 2) float (x, y) pixels, NaN where unlabelled; visible (N, T) bool;
    optional seg_area (T,) object area in pixels^2 (NaN where unknown); optional query_frame (N,) int."""
    try:
        with np.load(path, allow_pickle=False) as d:
            data = {k: d[k] for k in d.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz ({' '.join(str(exc).split())[:200]})") from None
    missing = [k for k in ("video", "points", "visible") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (layout: docs/evaluation.md)")
    video, points, visible = data["video"], data["points"], data["visible"]
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"{path}: video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    T = video.shape[0]
    if points.ndim != 3 or points.shape[1:] != (T, 2) or not np.issubdtype(points.dtype, np.floating):
        raise ValueError(f"{path}: points must be float (N, {T}, 2), got {points.dtype} {points.shape}")
    if visible.shape != points.shape[:2] or visible.dtype != np.bool_:
        raise ValueError(f"{path}: visible must be bool (N, T) = {points.shape[:2]}, got {visible.dtype} "
                         f"{visible.shape}")
    meta: dict[str, Any] = {"source": "sparse_npz", "file": str(path)}
    if "seg_area" in data:
        area = np.asarray(data["seg_area"], dtype=np.float64)
        if area.shape != (T,):
            raise ValueError(f"{path}: seg_area must be ({T},), got {area.shape}")
        meta["seg_area"] = [float(a) if np.isfinite(a) else None for a in area]
    query = None
    if "query_frame" in data:
        query = np.asarray(data["query_frame"])
        if query.shape != points.shape[:1] or not np.issubdtype(query.dtype, np.integer):
            raise ValueError(f"{path}: query_frame must be integer (N,) = ({points.shape[0]},), got {query.dtype} "
                             f"{query.shape}")
    try:
        return TrackSample(video=video, tracks=points.transpose(1, 0, 2).astype(np.float32),
                           visibility=np.ascontiguousarray(visible.T), query_frames=query, key=path.stem, meta=meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_sparse_npz(pattern: str) -> Iterator[TrackSample]:
    """A .npz file, a folder of them or a glob (one video per file, named by its stem)."""
    for path in _paths(pattern, ".npz"):
        yield sparse_npz_sample(path)


# ------------------------------------------------------------------------------------------------ dispatch
def detect(path: str) -> str:
    first = str(path).split(",")[0].strip()
    if first.endswith(".pkl"):
        return "tapvid"
    if first.endswith(".npz") or (os.path.isdir(first) and glob.glob(os.path.join(first, "*.npz"))):
        return "sparse_npz"
    return "shards"


def read(path: str, fmt: str = "auto") -> Iterator[TrackSample]:
    from datagen.shards import read_shards

    fmt = detect(path) if fmt == "auto" else fmt
    readers = {"tapvid": read_tapvid, "sparse_npz": read_sparse_npz, "shards": read_shards}
    if fmt not in readers:
        raise ValueError(f"unknown benchmark format {fmt!r} (choices: auto, {', '.join(readers)})")
    return readers[fmt](path)
