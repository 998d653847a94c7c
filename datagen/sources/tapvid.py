"""TAP-Vid records (the DAVIS pickle layout of the TAP-Vid benchmark; spec section 17): writer.

    one pickle: dict  name -> {"video":    uint8 (T, H, W, 3) RGB (or, in other TAP-Vid files, a list of JPEG bytes),
                               "points":   float32 (N, T, 2) (x, y) normalised to [0, 1]: x / (W - 1), y / (H - 1)
                                           (the align-corners frame: the evaluation multiplies by 255 for 256x256),
                               "occluded": bool (N, T) True = occluded (the inverse of TrackSample.visibility)}

Points a TrackSample leaves unlabelled (NaN) stay NaN in "points" and are flagged occluded, so they are never scored.
Reading TAP-Vid pickles (restricted unpickler, `datagen.safe_pickle.load_pickle`) belongs in this module too.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Iterable

import numpy as np

from datagen.sample import TrackSample


def tapvid_record(sample: TrackSample) -> dict[str, np.ndarray]:
    """TrackSample -> {"video", "points", "occluded"} in the layout above."""
    scale = np.array([max(sample.width - 1, 1), max(sample.height - 1, 1)], dtype=np.float32)
    return {"video": sample.video,
            "points": np.ascontiguousarray((sample.tracks / scale).transpose(1, 0, 2), dtype=np.float32),
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
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(records, fh, protocol=4)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(records)
