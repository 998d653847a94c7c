"""TAP-Vid records (the pickle layouts of the TAP-Vid benchmark; spec section 17): reader and writer.

    one pickle: dict  name -> {"video":    uint8 (T, H, W, 3) RGB (or, in other TAP-Vid files, a list of JPEG bytes),
                               "points":   float32 (N, T, 2) (x, y) normalised to [0, 1]: x / (W - 1), y / (H - 1)
                                           (the align-corners frame: the evaluation multiplies by 255 for 256x256),
                               "occluded": bool (N, T) True = occluded (the inverse of TrackSample.visibility)}

Points a TrackSample leaves unlabelled (NaN) stay NaN in "points" and are flagged occluded, so they are never scored.

Reader (`TapVidSource`, format "tapvid"): a .pkl file, a glob or a folder of them; each pickle holds a dict
{name: record} (DAVIS) or a list of records (Kinetics, RGB-Stacking, RoboTAP; named <file stem>-<index>). Frames may
be a uint8 array or a list of JPEG/PNG bytes (decoded with PIL). Pickles are read with the restricted unpickler
(`datagen.formats.safe_pickle.load_pickle`: numpy arrays and plain containers only), so a crafted file cannot run code.
Points become pixels x * (W - 1), y * (H - 1) (the inverse of the writer), occluded becomes ~visibility.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from tracker.common.atomic import atomic_file
from tracker.common.errors import one_line
from datagen.formats.sample import TrackSample
from datagen.formats.base import FileListSource, SourceInfo


def _decode_frames(video: Any, where: str) -> np.ndarray:
    """uint8 array (T, H, W, 3) or a sequence of JPEG/PNG bytes -> uint8 (T, H, W, 3) RGB."""
    import io

    from PIL import Image, UnidentifiedImageError

    from datagen.formats.shard_io import CorruptSampleError

    if isinstance(video, np.ndarray) and video.dtype != object:
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise CorruptSampleError(where, f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
        return video
    try:
        return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in video])
    except (UnidentifiedImageError, OSError, TypeError, ValueError) as err:
        raise CorruptSampleError(where, f"frames are neither a uint8 array nor decodable images ({one_line(err, 300)})"
                                 ) from None


def tapvid_sample(name: str, record: Any, where: str) -> TrackSample:
    """One TAP-Vid record -> TrackSample (pixels, visibility); CorruptSampleError naming `where` on bad data."""
    from datagen.formats.shard_io import CorruptSampleError

    if not isinstance(record, dict) or not all(k in record for k in ("video", "points", "occluded")):
        raise CorruptSampleError(where, "a TAP-Vid record needs 'video', 'points' and 'occluded'")
    video = _decode_frames(record["video"], where)
    points = np.asarray(record["points"], dtype=np.float64)
    occluded = np.asarray(record["occluded"]).astype(bool)
    T, H, W, _ = video.shape
    if points.ndim != 3 or points.shape[1:] != (T, 2) or occluded.shape != points.shape[:2]:
        raise CorruptSampleError(where, f"points {points.shape} / occluded {occluded.shape} do not fit (N, {T}, 2) / "
                                        f"(N, {T}) for {T} frames")
    from tracker.common.pixels import rescale_xy  # numpy only (imports the tracker package, so: torch, at call time)

    tracks = rescale_xy(points, (2, 2), (H, W)).transpose(1, 0, 2).astype(np.float32)  # [0, 1] -> pixels
    return TrackSample(video=video, tracks=tracks, visibility=np.ascontiguousarray(~occluded.T), key=str(name),
                       meta={"source": "tapvid"})


class TapVidSource(FileListSource):
    format = "tapvid"
    item_noun = "pickle"
    suffix = ".pkl"
    files_noun = "TAP-Vid pickle"

    def iter_raw(self, item: str) -> Iterator[tuple[str, Any, str]]:
        """(name, record, where) per video of one pickle (the whole pickle is read: TAP-Vid files are one pickle)."""
        from datagen.formats.safe_pickle import UnsafePickleError, load_pickle
        from datagen.formats.shard_io import CorruptShardError

        try:
            data = load_pickle(item)
        except UnsafePickleError as err:
            raise CorruptShardError(item, one_line(err, 300)) from None
        if isinstance(data, dict):
            records = data.items()
        elif isinstance(data, list):
            records = ((f"{Path(item).stem}-{i:04d}", r) for i, r in enumerate(data))
        else:
            raise CorruptShardError(item, f"a TAP-Vid pickle holds a dict or a list of records, not "
                                          f"{type(data).__name__}")
        for name, record in records:
            yield str(name), record, f"{item}:{name}"

    def decode(self, raw: tuple[str, Any, str]) -> TrackSample:
        name, record, where = raw
        return tapvid_sample(name, record, where)

    def info(self) -> SourceInfo:
        return SourceInfo(len(self.items), origin="TAP-Vid pickles (sizes known only after reading)")


def tapvid_record(sample: TrackSample) -> dict[str, np.ndarray]:
    """TrackSample -> {"video", "points", "occluded"} in the layout above."""
    from tracker.common.pixels import rescale_xy

    points = rescale_xy(sample.tracks, (sample.height, sample.width), (2, 2))  # pixels -> [0, 1]
    return {"video": sample.video,
            "points": np.ascontiguousarray(points.transpose(1, 0, 2), dtype=np.float32),
            "occluded": np.ascontiguousarray(~sample.visibility.T)}


def write_tapvid_pickle(samples: Iterable[TrackSample], out: str | os.PathLike) -> int:
    """Pickle {sample.key: tapvid_record(sample)} to `out` (atomically: temporary file, then rename); returns the
    count. Holds every video in memory until the end (TAP-Vid files are one pickle)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, np.ndarray]] = {}
    for sample in samples:
        name = sample.key or f"video-{len(records):05d}"
        if name in records:
            raise ValueError(f"two samples are named {name!r}: TAP-Vid records need unique names")
        records[name] = tapvid_record(sample)
    with atomic_file(out) as fh:
        pickle.dump(records, fh, protocol=4)
    return len(records)
