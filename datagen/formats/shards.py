"""Reader of TrackForge's own WebDataset shards (`python -m datagen generate`; format in docs/datagen_pipeline.md).

Path: a shard, a glob or `{000000..000009}` brace pattern, a folder (its `shard-*.tar`), several of these separated by
commas, or URLs (`https://...`, `pipe:...`, read through WebDataset). Items are shards; raw records are the member
bytes of one sample (decoded late by `datagen.formats.shard_io.decode_sample`). Conventions: pixel-centre (x, y) tracks,
`visibility` True = visible, as in `TrackSample`.
"""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from tracker.common.atomic import TMP_MARK
from tracker.common.errors import one_line
from datagen.formats.sample import TrackSample
from datagen.formats.shard_io import (DATASET_FILE, SHARD_GLOB, CorruptShardError, decode_sample, encode_sample,
                                      expand_shards, is_url, iter_tar_samples, shard_name, write_tar)
from datagen.formats.base import SourceError, SourceInfo, TrackSource, export_folder, first_path


class ShardSource(TrackSource):
    format = "shards"
    item_noun = "shard"

    @classmethod
    def detect(cls, path: str) -> bool:
        first = first_path(path)
        if ".tar" in os.path.basename(first) or is_url(first):
            return True
        return os.path.isdir(first) and ((Path(first) / DATASET_FILE).is_file()
                                         or bool(glob.glob(os.path.join(first, SHARD_GLOB))))

    def list_items(self) -> list[str]:
        return expand_shards(self.path)

    def iter_raw(self, item: str) -> Iterator[dict[str, Any]]:
        """Member bytes of each sample of one shard ({"__key__", "__url__", "video.npy.zst": b"...", ...})."""
        if not is_url(item):
            yield from iter_tar_samples(item)
            return
        import webdataset as wds

        try:
            yield from wds.tarfile_to_samples(handler=wds.reraise_exception)(iter([{"url": item}]))
        except Exception as err:  # any transport or tar error of a remote shard
            raise CorruptShardError(item, one_line(err, 300)) from None

    def decode(self, raw: dict[str, Any]) -> TrackSample:
        return decode_sample(raw)

    def info(self) -> SourceInfo:
        """From the dataset.json of every folder holding the shards; else from the first sample of the first shard."""
        items = self.items
        if not any(is_url(i) for i in items):
            manifests = []  # (folder, manifest, frames, (H, W))
            for folder in dict.fromkeys(str(Path(i).parent) for i in items):
                try:
                    manifest = json.loads((Path(folder) / DATASET_FILE).read_text())
                    scene = manifest["config"]["scene"]
                    manifests.append((folder, manifest, int(scene["num_frames"]),
                                      tuple(int(v) for v in scene["resolution"])))
                except (OSError, ValueError, KeyError, TypeError):
                    manifests = []
                    break
            if manifests:
                sizes = {m[3] for m in manifests}
                h, w = sizes.pop() if len(sizes) == 1 else (None, None)
                origin = ", ".join(str(Path(m[0]) / DATASET_FILE) for m in manifests[:3])
                # The scene count is exact only when every shard of each manifest is in the source.
                listed = set(items)
                whole = all({str(Path(f) / n) for n in m.get("shards", [])} <= listed for f, m, _, _ in manifests)
                count = sum(int(m.get("num_scenes", 0)) for _, m, _, _ in manifests) if whole else None
                return SourceInfo(len(items), min(m[2] for m in manifests), h, w, origin, count)
        errors = []
        for item in items[:8]:  # the first readable sample of the first few shards (bounded)
            try:
                for raw in self.iter_raw(item):
                    s = self.decode(raw)
                    return SourceInfo(len(items), s.num_frames, s.height, s.width, f"first sample of {item}")
            except ValueError as err:  # CorruptSampleError / CorruptShardError
                errors.append(err)
        if errors:
            raise SourceError(f"no readable sample in the first {len(errors)} shard(s) of {self.path} (first: "
                              f"{errors[0]}); no {DATASET_FILE} to read the frame count from either")
        return SourceInfo(len(items))


def write_shards(samples: Iterable[TrackSample], out: str | os.PathLike, *, samples_per_shard: int = 16,
                 codec: str = "npy_zstd") -> int:
    """Write samples (any source) as `<out>/shard-NNNNNN.tar` of `samples_per_shard` samples each (each tar written
    atomically by `datagen.formats.shard_io.write_tar`); keys are made tar-safe ('.' and '/' -> '_'). Returns the count.
    The folder is locked while writing; the temporary tars of an export killed half-way are deleted first."""
    with export_folder(out, f"shard-*.tar{TMP_MARK}*") as folder:
        return _write_shard_files(samples, folder, samples_per_shard, codec)


def _write_shard_files(samples: Iterable[TrackSample], out: Path, samples_per_shard: int, codec: str) -> int:
    import re

    count, shard, pending = 0, 0, []
    for sample in samples:
        key = re.sub(r"[./\s]", "_", sample.key) or f"sample-{count:06d}"
        pending.append(encode_sample(sample, key, codec))
        count += 1
        if len(pending) == samples_per_shard:
            write_tar(out / shard_name(shard), pending)
            shard, pending = shard + 1, []
    if pending:
        write_tar(out / shard_name(shard), pending)
    return count


def read_shards(patterns, *, decode: bool = True) -> Iterator["TrackSample | dict[str, Any]"]:
    """Iterate the samples of the shards matching `patterns` (see expand_shards), local or remote.

    decode=True yields decode_sample() TrackSamples; decode=False yields raw member bytes. Raises NoShardsError when
    nothing matches and CorruptSampleError / CorruptShardError on bad data.
    """
    shards = expand_shards(patterns)
    source = ShardSource(",".join(shards), shards)
    if decode:
        yield from source
        return
    for shard in shards:
        yield from source.iter_raw(shard)
