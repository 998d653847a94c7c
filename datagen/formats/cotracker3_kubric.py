"""The official CoTracker3 Kubric layout (what `cotracker/datasets/kubric_movif_dataset.py` trains on): read and write.

    <root>/<seq>/<seq>.npy        np.save of a dict (a pickled 0-d object array):
                                    "coords"      float (N, T, 2) pixels (x, y)
                                    "visibility"  bool (N, T): despite its name an OCCLUSION flag (True = occluded);
                                                  the official loader negates it
                                    anything else is ignored by the official loader (and by this reader, which lists
                                    the field names in meta["cotracker3_fields"])
    <root>/<seq>/frames/*.png     the T RGB frames, in file-name order (the official loader sorts the names)

Tracks are taken as pixel-centre coordinates (x = 0 at the centre of the leftmost pixel), which is how the official
pipeline treats them (it feeds them to the model unchanged; spec section 2.2). The `.npy` is read with
`datagen.formats.safe_pickle.load_npy`, which admits numpy arrays and plain containers only, so a crafted file cannot run code.

Sequences written by `write_cotracker3_kubric` also carry `trackforge_tracks3d` (N, T, 3), `trackforge_query_frames`
(N,) and `trackforge_meta` (a JSON string), which the official loader ignores and this reader restores, so a
TrackForge sample survives the round trip unchanged.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from tracker.common.atomic import TMP_MARK, tmp_path_for
from tracker.common.errors import one_line
from datagen.formats.sample import TrackSample
from datagen.formats.base import SourceInfo, SourceNotFoundError, TrackSource, export_folder

FRAME_EXTS = (".png", ".jpg", ".jpeg")
EXTRA_PREFIX = "trackforge_"


def _is_sequence(folder: Path) -> bool:
    """A sequence folder; hidden ones (a killed export's `.<seq>.tmp-*`, editor or file-system folders) are not."""
    if folder.name.startswith("."):
        return False
    return (folder / f"{folder.name}.npy").is_file() or (folder / "frames").is_dir()


def _frame_files(folder: Path) -> list[Path]:
    frames = folder / "frames"
    if not frames.is_dir():
        return []
    return sorted(p for p in frames.iterdir() if p.suffix.lower() in FRAME_EXTS)


class CoTracker3KubricSource(TrackSource):
    format = "cotracker3_kubric"
    item_noun = "sequence"

    @classmethod
    def detect(cls, path: str) -> bool:
        root = Path(os.path.expanduser(str(path)))
        if not root.is_dir():
            return False
        if _is_sequence(root):
            return True
        try:
            for i, entry in enumerate(os.scandir(root)):  # a few entries suffice: never list 6,000 folders here
                if entry.is_dir() and _is_sequence(Path(entry.path)):
                    return True
                if i > 50:
                    break
        except OSError:
            return False
        return False

    def list_items(self) -> list[str]:
        """Sequence folders of the root (or the path itself when it is one sequence), sorted by name."""
        root = Path(os.path.expanduser(self.path))
        if root.is_dir() and _is_sequence(root):
            return [str(root)]
        items = sorted(str(p) for p in root.iterdir() if p.is_dir() and _is_sequence(p)) if root.is_dir() else []
        if not items:
            raise SourceNotFoundError(f"no CoTracker3 Kubric sequences (<seq>/<seq>.npy + <seq>/frames/*.png) "
                                      f"in {self.path}")
        return items

    def iter_raw(self, item: str) -> Iterator[str]:
        yield item  # one sample per sequence folder; decoding reads it

    def decode(self, raw: str) -> TrackSample:
        from datagen.formats.safe_pickle import UnsafePickleError, load_npy
        from datagen.formats.shard_io import CorruptSampleError

        folder = Path(raw)
        seq = folder.name
        npy = folder / f"{seq}.npy"
        try:
            array = load_npy(npy)
        except (FileNotFoundError, UnsafePickleError) as err:
            raise CorruptSampleError(str(folder), one_line(err, 300)) from None
        annot = array.item() if array.dtype.hasobject and array.shape == () else None
        if not isinstance(annot, dict):
            raise CorruptSampleError(str(folder), f"{npy.name} does not hold a dict (got {array.dtype} {array.shape})")
        missing = [k for k in ("coords", "visibility") if k not in annot]
        if missing:
            raise CorruptSampleError(str(folder), f"{npy.name} lacks {', '.join(missing)}")
        coords = np.asarray(annot["coords"])
        occluded = np.asarray(annot["visibility"])
        if coords.ndim != 3 or coords.shape[-1] != 2 or not np.issubdtype(coords.dtype, np.number):
            raise CorruptSampleError(str(folder), f"coords must be numeric (N, T, 2), got {coords.dtype} "
                                                  f"{coords.shape}")
        flags_ok = occluded.dtype == bool or np.issubdtype(occluded.dtype, np.number)
        if occluded.shape != coords.shape[:2] or not flags_ok:
            raise CorruptSampleError(str(folder), f"visibility (occlusion flags) must be (N, T) = {coords.shape[:2]}, "
                                                  f"got {occluded.dtype} {occluded.shape}")
        files = _frame_files(folder)
        n, t = coords.shape[:2]
        if len(files) != t:
            raise CorruptSampleError(str(folder), f"{len(files)} frame image(s) in frames/ but coords has {t} frames")
        video = _read_frames(files, str(folder))
        extras = {k: annot[k] for k in annot if str(k).startswith(EXTRA_PREFIX)}
        meta: dict[str, Any] = {}
        if f"{EXTRA_PREFIX}meta" in extras:
            try:
                meta = json.loads(str(extras[f"{EXTRA_PREFIX}meta"]))
            except ValueError as err:
                raise CorruptSampleError(str(folder), f"{EXTRA_PREFIX}meta is not JSON: {one_line(err, 300)}") from None
        meta["cotracker3_fields"] = sorted(str(k) for k in annot if not str(k).startswith(EXTRA_PREFIX))
        tracks3d = extras.get(f"{EXTRA_PREFIX}tracks3d")
        query_frames = extras.get(f"{EXTRA_PREFIX}query_frames")
        try:
            return TrackSample(
                video=video,
                tracks=coords.astype(np.float32).transpose(1, 0, 2),
                visibility=~occluded.astype(bool).T,  # the file stores occlusion
                tracks3d=None if tracks3d is None else np.asarray(tracks3d, np.float32).transpose(1, 0, 2),
                query_frames=None if query_frames is None else np.asarray(query_frames, np.int64),
                key=seq, meta=meta)
        except ValueError as err:
            raise CorruptSampleError(str(folder), one_line(err, 300)) from None

    def info(self) -> SourceInfo:
        """Frame count and size of the first sequence (the public set is uniform: 120 frames of 512x512)."""
        from PIL import Image

        first = Path(self.items[0])
        files = _frame_files(first)
        n = len(self.items)
        if not files:
            return SourceInfo(n, origin=str(first), num_samples=n)
        try:
            with Image.open(files[0]) as im:
                w, h = im.size
        except OSError:
            return SourceInfo(n, len(files), origin=f"{first}/frames", num_samples=n)
        return SourceInfo(n, len(files), h, w, origin=f"first sequence {first}", num_samples=n)


def _read_frames(files: list[Path], where: str) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB from image files (grey or RGBA images are converted)."""
    from PIL import Image

    from datagen.formats.shard_io import CorruptSampleError

    frames = []
    for path in files:
        try:
            with Image.open(path) as im:
                frames.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
            raise CorruptSampleError(where, f"cannot read {path.name}: {one_line(err, 300)}") from None
        if frames[-1].shape != frames[0].shape:
            raise CorruptSampleError(where, f"{path.name} is {frames[-1].shape[1]}x{frames[-1].shape[0]}, the first "
                                            f"frame {frames[0].shape[1]}x{frames[0].shape[0]}")
    return np.stack(frames)


# ---------------------------------------------------------------------------------------------- writer
def sequence_name(key: str) -> str:
    """A sample key as a folder name (path separators and odd characters -> '_')."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", key).strip(".") or "sample"
    return name


def write_cotracker3_kubric(samples: Iterable[TrackSample], out: str | os.PathLike) -> int:
    """Write samples as `<out>/<seq>/<seq>.npy` + `<out>/<seq>/frames/NNN.png` (layout above); returns the count.

    Each sequence is written into a hidden temporary folder `.<seq>.tmp-<host>-<pid>` and renamed into place, so an
    interrupted export never leaves a half-written sequence; a failed write removes its folder, and the next export
    into `out` removes those of a killed one (holding the folder's lock: `export_folder`). An existing sequence of
    the same name is replaced. Unlabelled points (NaN) stay NaN in `coords` and are flagged occluded.
    """
    with export_folder(out, f".*{TMP_MARK}*") as folder:
        return _write_sequences(samples, folder)


def _write_sequences(samples: Iterable[TrackSample], out: Path) -> int:
    count = 0
    for sample in samples:
        seq = sequence_name(sample.key or f"seq-{count:06d}")
        tmp = tmp_path_for(out / seq, hidden=True)  # a folder, renamed into place when complete
        try:
            _write_sequence(sample, seq, tmp)
            final = out / seq
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename; what a failed write left
        count += 1
    return count


def _write_sequence(sample: TrackSample, seq: str, tmp: Path) -> None:
    from PIL import Image

    from datagen.formats.shard_io import _json_default

    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "frames").mkdir(parents=True)
    digits = max(3, len(str(sample.num_frames - 1)))
    for t, frame in enumerate(sample.video):
        Image.fromarray(frame).save(tmp / "frames" / f"{t:0{digits}d}.png", compress_level=3)
    annot: dict[str, Any] = {
        "coords": np.ascontiguousarray(sample.tracks.transpose(1, 0, 2), dtype=np.float32),
        "visibility": np.ascontiguousarray(~sample.visibility.T),  # occlusion flags, as the official set
        f"{EXTRA_PREFIX}meta": json.dumps(sample.meta, default=_json_default),
    }
    if sample.tracks3d is not None:
        annot[f"{EXTRA_PREFIX}tracks3d"] = np.ascontiguousarray(sample.tracks3d.transpose(1, 0, 2))
    if sample.query_frames is not None:
        annot[f"{EXTRA_PREFIX}query_frames"] = sample.query_frames
    np.save(tmp / f"{seq}.npy", np.array(annot, dtype=object), allow_pickle=True)

