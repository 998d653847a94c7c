"""DAVIS video object segmentation folders (DAVIS-2016 / DAVIS-2017 layout): real video with object masks, no tracks.

    <root>/JPEGImages/480p/<seq>/00000.jpg ...   RGB frames
    <root>/Annotations/480p/<seq>/00000.png ...  one mask per frame, same file stem and size as its frame:
        palette ("P") PNG (DAVIS-2017): the palette index is the object id, 0 background, 1..254 objects,
                                        255 void (ignored by the scores);
        grayscale PNG (DAVIS-2016):     one object, every non-zero pixel (255) is the object (id 1).
        A palette sequence whose masks hold no id in 1..254 but do hold 255 is a single-object mask saved with a
        palette: there 255 is the object (id 1), as in a grayscale mask.

Path: the root (the folder holding JPEGImages/ and Annotations/). Items are sequence names (sorted); a sample is
one whole sequence, its key the sequence name, with `masks` (T, H, W) uint8 ids in DAVIS's own pixels and no point
tracks (N = 0): the mask-consistency score (lightning_modules.evaluation.mask_queries / mask_scoring) places its
queries from the masks. Every inconsistency (missing mask, frame/mask count or size mismatch, empty or unreadable
sequence) is a one-line CorruptSampleError naming the sequence.

Licence: DAVIS is for research use only; read it in place, never copy it into the project.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from tracker.common.errors import one_line
from datagen.formats.sample import MASK_VOID, TrackSample
from datagen.formats.shard_io import CorruptSampleError
from datagen.formats.base import SourceInfo, SourceNotFoundError, TrackSource

RESOLUTION = "480p"  # the DAVIS resolution folder read (the semi-supervised benchmarks' standard)
FRAME_EXTS = (".jpg", ".jpeg", ".png")


class CorruptSequenceError(CorruptSampleError):
    """A DAVIS sequence cannot be read; the message is `sequence <name>: <reason>`."""

    def __init__(self, seq: str, reason: str) -> None:
        self.key, self.reason = seq, reason
        ValueError.__init__(self, f"sequence {seq}: {reason}")


def _frames_dir(root: str | Path) -> Path:
    return Path(os.path.expanduser(str(root))) / "JPEGImages" / RESOLUTION


def _masks_dir(root: str | Path) -> Path:
    return Path(os.path.expanduser(str(root))) / "Annotations" / RESOLUTION


def _files(folder: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    """file stem -> path of the images in `folder`, in name order (DAVIS numbers its frames 00000, 00001, ...)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in exts and not p.name.startswith(".")}


def _read(path: Path, seq: str, what: str):
    """PIL image of `path`, fully decoded (a truncated file fails here, not later); CorruptSequenceError."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(path)
        im.load()
        return im
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise CorruptSequenceError(seq, f"cannot read {what} {path.name} ({one_line(err, 200)})") from None


def _mask_ids(im, seq: str, name: str) -> tuple[np.ndarray, bool]:
    """(uint8 (H, W) ids, is_palette) of one mask image under the rules of the module docstring."""
    if im.mode == "P":
        return np.asarray(im, dtype=np.uint8), True
    if im.mode in ("L", "1", "I", "I;16"):
        return (np.asarray(im) != 0).astype(np.uint8), False
    raise CorruptSequenceError(seq, f"mask {name} has mode {im.mode}; DAVIS masks are palette (P) or grayscale (L) "
                                    "PNGs")


def read_davis_sequence(root: str | Path, seq: str) -> TrackSample:
    """One sequence of a DAVIS root -> TrackSample(video, masks, no tracks); CorruptSequenceError (one line)."""
    frames, masks = _files(_frames_dir(root) / seq, FRAME_EXTS), _files(_masks_dir(root) / seq, (".png",))
    if not frames:
        raise CorruptSequenceError(seq, f"no frames in {_frames_dir(root) / seq}")
    missing = [s for s in frames if s not in masks]
    extra = [s for s in masks if s not in frames]
    if missing or extra:
        detail = (f"no mask for frame {frames[missing[0]].name}" if missing
                  else f"mask {masks[extra[0]].name} has no frame")
        raise CorruptSequenceError(seq, f"{len(frames)} frames in JPEGImages/{RESOLUTION} but {len(masks)} masks in "
                                        f"Annotations/{RESOLUTION} ({detail})")
    video, ids, palette = [], [], []
    for stem, frame_path in frames.items():
        frame = _read(frame_path, seq, "frame")
        mask = _read(masks[stem], seq, "mask")
        if mask.size != frame.size:
            raise CorruptSequenceError(seq, f"frame {frame_path.name} is {frame.size[0]}x{frame.size[1]} but its "
                                            f"mask is {mask.size[0]}x{mask.size[1]}")
        if video and frame.size != (video[0].shape[1], video[0].shape[0]):
            raise CorruptSequenceError(seq, f"frame {frame_path.name} is {frame.size[0]}x{frame.size[1]}, frame "
                                            f"{next(iter(frames.values())).name} {video[0].shape[1]}x"
                                            f"{video[0].shape[0]}")
        video.append(np.asarray(frame.convert("RGB")))
        m, p = _mask_ids(mask, seq, masks[stem].name)
        ids.append(m)
        palette.append(p)
    masks_arr = np.stack(ids)
    in_palette = np.asarray(palette)
    if in_palette.any():
        present = np.bincount(masks_arr[in_palette].ravel(), minlength=256) > 0
        if present[MASK_VOID] and not present[1:MASK_VOID].any():  # a binary mask saved with a palette
            masks_arr[in_palette] = (masks_arr[in_palette] == MASK_VOID).astype(np.uint8)
    video_arr = np.stack(video)
    T = len(video)
    return TrackSample(video=video_arr, tracks=np.zeros((T, 0, 2), np.float32), visibility=np.zeros((T, 0), bool),
                       key=seq, meta={"source": "davis", "sequence": seq}, masks=masks_arr)


class DavisSource(TrackSource):
    format = "davis"
    item_noun = "sequence"
    labels = "masks"

    @classmethod
    def detect(cls, path: str) -> bool:
        try:
            return _frames_dir(path).is_dir() and _masks_dir(path).is_dir()
        except (OSError, ValueError):
            return False

    def list_items(self) -> list[str]:
        folder = _frames_dir(self.path)
        items = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []
        if not items:
            raise SourceNotFoundError(f"no DAVIS sequences (JPEGImages/{RESOLUTION}/<seq>/) in {self.path}")
        return items

    def iter_raw(self, item: str) -> Iterator[str]:
        yield item  # one sample per sequence; decoding reads its frames and masks

    def decode(self, raw: str) -> TrackSample:
        return read_davis_sequence(self.path, raw)

    def info(self) -> SourceInfo:
        """Frames: the shortest sequence (file counts); size: from the first frame's header of every sequence (None
        when they differ)."""
        from PIL import Image

        items, counts, sizes = self.items, [], set()
        for seq in items:
            files = _files(_frames_dir(self.path) / seq, FRAME_EXTS)
            counts.append(len(files))
            try:
                with Image.open(next(iter(files.values()))) as im:  # reads the header only
                    sizes.add(im.size)
            except (StopIteration, OSError, ValueError):
                sizes.add(None)
        w, h = sizes.pop() if len(sizes) == 1 and None not in sizes else (None, None)
        return SourceInfo(len(items), min(counts) or None, h, w, origin="DAVIS frame files", num_samples=len(items))
