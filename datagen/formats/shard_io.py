"""WebDataset shard format: encode/decode one scene sample, write tars atomically, read shards back.

One sample = these tar members sharing a key (e.g. ``scene-000013``; see docs/datagen_pipeline.md):
  ``video.npy.zst``   uint8 (T, H, W, 3) RGB .npy, zstd level 3 with checksum (or ``video.mkv``: lossless FFV1)
  ``tracks.npy``      float32 (T, Q, 2) pixels (x, y), x = 0 at the centre of the leftmost pixel
  ``visibility.npy``  bool (T, Q)
  ``tracks3d.npy``    float32 (T, Q, 3) camera space (x right, y down, z forward, metres); optional (absent when
                      the sample has no 3-D tracks, e.g. converted from a 2-D-only source)
  ``meta.json``       the scene's metadata (seed, config, camera, per-track categories, ...): content only, no
                      timings (those go to the generator's scene_timings.jsonl), so a rerender is byte-identical
Arrays are plain .npy (never pickled). Only numpy/PyAV/zstandard are imported here (no bpy, no TensorFlow).
"""
from __future__ import annotations

import glob
import io
import json
import os
import tarfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from tracker.common.errors import one_line
from datagen.formats.base import SourceNotFoundError, split_paths

if TYPE_CHECKING:
    from datagen.formats.sample import TrackSample

VIDEO_EXTS = {"ffv1": "mkv", "npy_zstd": "npy.zst"}
ARRAY_MEMBERS = {  # name -> (dtype, trailing dims)
    "tracks": (np.float32, (2,)),
    "visibility": (np.bool_, ()),
    "tracks3d": (np.float32, (3,)),
}
OPTIONAL_MEMBERS = {"tracks3d"}
_TAR_MTIME = 946684800  # fixed header mtime (2000-01-01) so rerenders give byte-identical tars
DATASET_FILE = "dataset.json"  # the generator's manifest, next to the shards of a data set (datagen.pipeline.generate)
SHARD_GLOB = "shard-*.tar"  # the shards of a data set folder (shard_name)
_NPY_MAGIC = b"\x93NUMPY"


class CorruptSampleError(ValueError):
    """A sample (or a shard) is unreadable: missing/truncated member, bad dtype/shape, bad encoding."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"corrupt sample {key!r}: {reason}")


class CorruptShardError(CorruptSampleError):
    """A shard file itself is unreadable (truncated tar, not a tar, ...)."""

    def __init__(self, shard: str, reason: str):
        self.key = shard
        self.reason = reason
        ValueError.__init__(self, f"corrupt shard {shard}: {reason}")


class NoShardsError(SourceNotFoundError):
    """A shard pattern matched no files (a SourceNotFoundError of the shards reader too)."""


# ---------------------------------------------------------------------------------------------- video
def encode_video(video: np.ndarray, codec: str = "npy_zstd", fps: float = 12.0) -> tuple[str, bytes]:
    """video uint8 (T, H, W, 3) RGB -> (member extension, bytes). Both codecs are exactly lossless."""
    video = np.ascontiguousarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    if codec == "ffv1":
        return VIDEO_EXTS[codec], _encode_ffv1(video, fps)
    if codec == "npy_zstd":
        import zstandard

        # The checksum makes any flipped bit a decode error instead of silently wrong pixels.
        cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
        return VIDEO_EXTS[codec], cctx.compress(_npy_bytes(video))
    raise ValueError(f"unknown video codec {codec!r} (choices: {', '.join(VIDEO_EXTS)})")


def encode_matroska(video: np.ndarray, codec: str, pix_fmt: str, fps: float = 12.0,
                    options: dict[str, str] | None = None) -> bytes:
    """uint8 (T, H, W, 3) RGB -> one Matroska stream of `codec` in `pix_fmt` (PyAV)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="matroska") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = int(video.shape[2]), int(video.shape[1]), pix_fmt
        stream.options = dict(options or {})
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _encode_ffv1(video: np.ndarray, fps: float) -> bytes:
    # bgr0 is FFV1's packed-RGB mode: RGB -> bgr0 is a pure byte shuffle, so the round trip is exact
    # (gbrp is rejected by this FFmpeg build's ffv1 encoder; yuv444p would lose 1 LSB).
    return encode_matroska(video, "ffv1", "bgr0", fps)


def decode_video(ext: str, data: bytes) -> np.ndarray:
    """Inverse of encode_video: -> uint8 (T, H, W, 3). Raises ValueError/av errors on bad data."""
    if ext == "mkv":
        import av

        with av.open(io.BytesIO(data), mode="r", format="matroska") as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        if not frames:
            raise ValueError("video has no frames")
        return np.stack(frames)
    if ext == "npy.zst":
        import zstandard

        return _load_npy(zstandard.ZstdDecompressor().decompress(data))
    raise ValueError(f"unknown video member extension {ext!r}")


# ---------------------------------------------------------------------------------------------- samples
def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    """.npy bytes -> array; ValueError saying what is wrong (numpy alone calls any non-.npy bytes "pickled")."""
    if not data:
        raise ValueError("it is empty")
    if not data.startswith(_NPY_MAGIC):
        raise ValueError(f"not a .npy array: it starts with {data[:12]!r} instead of the .npy magic {_NPY_MAGIC!r}")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):  # a valid .npy header with an object dtype
            raise ValueError("it holds an object array (pickled Python objects), which is never loaded") from None
        raise
    except EOFError as err:
        raise ValueError(f"truncated ({err})") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"meta value of type {type(obj).__name__} is not JSON-able")


def encode_sample(sample, key: str, codec: str = "npy_zstd") -> dict[str, Any]:
    """TrackSample -> webdataset sample dict {"__key__", "video.<ext>", "tracks.npy", ..., "meta.json"} of bytes.

    `key` must not contain dots (webdataset splits member names at the first dot). meta.json gets the sample's
    meta (content only: a run's timings and thread count come beside the sample, datagen.scene.render.RenderedScene)
    plus key and video_codec.
    """
    if "." in key or "/" in key or not key:
        raise ValueError(f"sample key must be non-empty without '.' or '/': {key!r}")
    fps = float(sample.meta.get("fps", 12) or 12)
    ext, video_bytes = encode_video(sample.video, codec, fps)
    out: dict[str, Any] = {"__key__": key, f"video.{ext}": video_bytes}
    for name, (dtype, _) in ARRAY_MEMBERS.items():
        if getattr(sample, name) is None and name in OPTIONAL_MEMBERS:
            continue
        out[f"{name}.npy"] = _npy_bytes(np.asarray(getattr(sample, name)).astype(dtype, copy=False))
    meta = {**sample.meta, "key": key, "video_codec": codec}
    out["meta.json"] = json.dumps(meta, default=_json_default).encode()
    return out


def decode_sample(raw: dict[str, Any]) -> "TrackSample":
    """webdataset raw sample (member suffix -> bytes, "__key__") -> `datagen.formats.sample.TrackSample` with
    video uint8 (T, H, W, 3), tracks float32 (T, Q, 2), visibility bool (T, Q), tracks3d float32 (T, Q, 3) (None
    when the member is absent), query_frames from meta["query_frames"] (when present), key, meta dict.

    Raises CorruptSampleError (naming the key and the reason) on a missing, truncated or undecodable
    member, a wrong dtype, or shapes that disagree.
    """
    from datagen.formats.sample import TrackSample

    key = str(raw.get("__key__", "<no key>"))
    members = {k.lstrip("."): v for k, v in raw.items() if not k.startswith("__")}
    video_keys = [k for k in members if k.startswith("video.")]
    missing = [f"{n}.npy" for n in ARRAY_MEMBERS if f"{n}.npy" not in members and n not in OPTIONAL_MEMBERS]
    missing += [] if "meta.json" in members else ["meta.json"]
    missing += [] if video_keys else ["video.npy.zst (or video.mkv)"]
    if missing:
        raise CorruptSampleError(key, f"missing member(s) {', '.join(missing)}")
    try:
        video = decode_video(video_keys[0][len("video."):], members[video_keys[0]])
    except Exception as err:  # av.FFmpegError, zstd errors, ValueError: all mean "bad video bytes"
        raise CorruptSampleError(key, f"cannot decode {video_keys[0]}: {one_line(err)}") from None
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise CorruptSampleError(key, f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    t = video.shape[0]
    q = None
    arrays: dict[str, np.ndarray | None] = {}
    for name, (dtype, trailing) in ARRAY_MEMBERS.items():
        if f"{name}.npy" not in members:  # an optional member
            arrays[name] = None
            continue
        try:
            arr = _load_npy(members[f"{name}.npy"])
        except Exception as err:
            raise CorruptSampleError(key, f"cannot load {name}.npy: {one_line(err)}") from None
        if arr.dtype != dtype:
            raise CorruptSampleError(key, f"{name}.npy has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        q = arr.shape[1] if q is None and arr.ndim >= 2 else q
        expected = (t, q, *trailing)
        if arr.shape != expected:
            raise CorruptSampleError(key, f"{name}.npy has shape {arr.shape}, expected {expected} "
                                          f"(T from the {t}-frame video)")
        arrays[name] = arr
    try:
        meta = json.loads(members["meta.json"])
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptSampleError(key, f"cannot parse meta.json: {one_line(err)}") from None
    if not isinstance(meta, dict):
        raise CorruptSampleError(key, "meta.json is not a JSON object")
    try:
        query_frames = meta.get("query_frames")
        return TrackSample(video=video, tracks=arrays["tracks"], visibility=arrays["visibility"],
                           tracks3d=arrays["tracks3d"],
                           query_frames=None if query_frames is None else np.asarray(query_frames, dtype=np.int64),
                           key=key, meta=meta)
    except (ValueError, TypeError) as err:  # e.g. meta["query_frames"] of the wrong length
        raise CorruptSampleError(key, one_line(err)) from None


# ---------------------------------------------------------------------------------------------- tars
def write_tar(path: str | os.PathLike, samples: Iterable[dict[str, Any]]) -> Path:
    """Write encoded samples to a tar atomically (tracker.common.atomic: temporary file, fsync, then rename).

    Headers are fixed (mtime, owner, mode), so the same samples always give byte-identical files.
    """
    from tracker.common.atomic import atomic_file

    path = Path(path)
    with atomic_file(path, "wb", fsync=True) as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for sample in samples:
                key = sample["__key__"]
                for name, data in sample.items():
                    if name.startswith("__"):
                        continue
                    info = tarfile.TarInfo(f"{key}.{name}")
                    info.size, info.mtime, info.mode = len(data), _TAR_MTIME, 0o644
                    tf.addfile(info, io.BytesIO(data))
    return path


def iter_tar_samples(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Raw samples of one tar: consecutive members sharing a key (text before the basename's first dot).

    Raises CorruptShardError for a missing file, a non-tar, a truncated member or a missing end-of-archive
    marker (a tar cut exactly at a member boundary).
    """
    path = Path(path)
    url = str(path)
    if not path.is_file():
        raise CorruptShardError(url, "file not found")
    size = path.stat().st_size
    current: dict[str, Any] | None = None
    try:
        with tarfile.open(path, mode="r:") as tf:
            for info in tf:
                if not info.isfile():
                    continue
                dirname, _, base = info.name.rpartition("/")
                key, dot, suffix = base.partition(".")
                if not dot:
                    raise CorruptShardError(url, f"member {info.name!r} has no extension")
                key = f"{dirname}/{key}" if dirname else key
                data = tf.extractfile(info).read()
                if len(data) != info.size:
                    raise CorruptShardError(url, f"member {info.name!r} is truncated")
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                current[suffix] = data
            end = tf.offset
    except tarfile.TarError as err:
        raise CorruptShardError(url, f"unreadable tar ({one_line(err)})") from None
    except EOFError as err:
        raise CorruptShardError(url, f"truncated tar ({one_line(err)})") from None
    # A tar cut at a member boundary parses cleanly but lacks the two zero blocks that end an archive.
    if size < end + 2 * tarfile.BLOCKSIZE:
        raise CorruptShardError(url, "truncated tar (no end-of-archive marker)")
    if current is not None:
        yield current


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.tar"


def is_url(item: str) -> bool:
    """A remote or piped shard (read through WebDataset), not a local file."""
    return "://" in item or item.startswith("pipe:")


def expand_shards(patterns: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Shard patterns -> unique shard paths/URLs in order.

    `patterns`: a string, a path or a list of them; a string may hold several comma-separated parts. Each part is
    brace-expanded (``{000000..000009}``); a local glob gives its matching files sorted, a folder its
    ``shard-*.tar``, a URL (``https://...``, ``pipe:...``) stays as it is. Raises NoShardsError when nothing matches.
    """
    from braceexpand import braceexpand

    parts = [patterns] if isinstance(patterns, (str, os.PathLike)) else list(patterns)
    urls: list[str] = []
    for part in (p for item in parts for p in split_paths(item)):
        for item in braceexpand(part):
            if is_url(item):
                urls.append(item)
                continue
            item = os.path.expanduser(item)
            if os.path.isdir(item):  # a data set folder: its shards
                item = os.path.join(item, SHARD_GLOB)
            if glob.has_magic(item):
                urls += sorted(p for p in glob.glob(item) if os.path.isfile(p))
            elif os.path.isfile(item):
                urls.append(item)
    if not urls:
        shown = patterns if isinstance(patterns, (str, os.PathLike)) else [str(p) for p in parts]
        raise NoShardsError(f"no shards match {str(shown)!r} (render some with `python -m datagen generate` or fix "
                            "the path)")
    return list(dict.fromkeys(urls))
