"""Sparse keypoint annotations on real video (BADJA-style: points labelled on some frames only), one .npz per video.

    video        uint8 (T, H, W, 3) RGB
    points       float (N, T, 2) (x, y) pixels, pixel-centre convention; NaN where a point is not labelled
    visible      bool (N, T) True = visible (ignored where unlabelled)
    seg_area     optional float (T,) area of the annotated object in pixels^2 (e.g. its segmentation mask); NaN
                 where unknown. Evaluation scores PCK at 0.2 * sqrt(area) with it.
    query_frame  optional int (N,) the frame each point is to be queried at (evaluation query mode "given")

Path: an .npz file, a folder of them, a glob, or several of these separated by commas; the key of a video is its
file stem. Read with np.load(allow_pickle=False): object arrays are refused, nothing in the file can run code.
`write_sparse_npz` writes TrackSamples in this layout (area from meta["seg_area"], query frames when set).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from tracker.common.atomic import TMP_MARK, atomic_file
from tracker.common.errors import one_line
from datagen.formats.sample import TrackSample
from datagen.formats.base import FileListSource, SourceInfo, export_folder


def read_sparse_npz(path: str | os.PathLike) -> TrackSample:
    """One file of the layout above -> TrackSample (meta["seg_area"]: list with None where unknown).
    CorruptSampleError (one line naming the file and the array) on anything else."""
    from datagen.formats.shard_io import CorruptSampleError

    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            data = {k: d[k] for k in d.files}
    except (OSError, ValueError, EOFError) as err:
        raise CorruptSampleError(where, f"not a readable .npz of arrays ({one_line(err, 300)})") from None
    missing = [k for k in ("video", "points", "visible") if k not in data]
    if missing:
        raise CorruptSampleError(where, f"missing array(s) {', '.join(missing)} (layout: docs/evaluation.md)")
    video, points, visible = data["video"], data["points"], data["visible"]
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise CorruptSampleError(where, f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    T = video.shape[0]
    if points.ndim != 3 or points.shape[1:] != (T, 2) or not np.issubdtype(points.dtype, np.floating):
        raise CorruptSampleError(where, f"points must be float (N, {T}, 2), got {points.dtype} {points.shape}")
    if visible.shape != points.shape[:2] or visible.dtype != np.bool_:
        raise CorruptSampleError(where, f"visible must be bool (N, T) = {points.shape[:2]}, got {visible.dtype} "
                                        f"{visible.shape}")
    meta: dict[str, Any] = {"source": "sparse_npz"}
    if "seg_area" in data:
        area = data["seg_area"]
        if area.shape != (T,) or not np.issubdtype(area.dtype, np.number):
            raise CorruptSampleError(where, f"seg_area must be numeric ({T},), got {area.dtype} {area.shape}")
        meta["seg_area"] = [float(a) if np.isfinite(a) else None for a in area.astype(np.float64)]
    query = data.get("query_frame")
    if query is not None and (query.shape != points.shape[:1] or not np.issubdtype(query.dtype, np.integer)):
        raise CorruptSampleError(where, f"query_frame must be integer (N,) = ({points.shape[0]},), got {query.dtype} "
                                        f"{query.shape}")
    try:
        return TrackSample(video=video, tracks=points.transpose(1, 0, 2).astype(np.float32),
                           visibility=np.ascontiguousarray(visible.T), query_frames=query, key=Path(path).stem,
                           meta=meta)
    except ValueError as err:
        raise CorruptSampleError(where, one_line(err, 300)) from None


class SparseNpzSource(FileListSource):
    format = "sparse_npz"
    item_noun = "file"
    suffix = ".npz"
    files_noun = ".npz file"

    def iter_raw(self, item: str) -> Iterator[str]:
        yield item  # one video per file; decoding reads it

    def decode(self, raw: str) -> TrackSample:
        return read_sparse_npz(raw)

    def info(self) -> SourceInfo:
        n = len(self.items)
        try:
            with np.load(self.items[0], allow_pickle=False) as d:
                t, h, w = d["video"].shape[:3]
        except (OSError, ValueError, KeyError, EOFError):
            return SourceInfo(n, num_samples=n)
        return SourceInfo(n, int(t), int(h), int(w), origin=f"first file {self.items[0]}", num_samples=n)


def write_sparse_npz(samples: Iterable[TrackSample], out: str | os.PathLike) -> int:
    """Write each sample as <out>/<key>.npz in the layout above (atomically: temporary file, then rename). The
    folder is locked while writing; the temporary files of an export killed half-way are deleted first."""
    with export_folder(out, f".*.npz{TMP_MARK}*") as folder:
        return _write_npz_files(samples, folder)


def _write_npz_files(samples: Iterable[TrackSample], out: Path) -> int:
    count = 0
    for sample in samples:
        arrays: dict[str, np.ndarray] = {
            "video": sample.video, "points": np.ascontiguousarray(sample.tracks.transpose(1, 0, 2)),
            "visible": np.ascontiguousarray(sample.visibility.T)}
        if sample.meta.get("seg_area") is not None:
            arrays["seg_area"] = np.array([np.nan if a is None else a for a in sample.meta["seg_area"]], np.float32)
        if sample.query_frames is not None:
            arrays["query_frame"] = sample.query_frames
        name = (sample.key or f"video-{count:05d}").replace("/", "_")
        with atomic_file(out / f"{name}.npz", hidden=True) as fh:
            np.savez_compressed(fh, **arrays)
        count += 1
    return count
