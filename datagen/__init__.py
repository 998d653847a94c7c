"""TrackForge data generation: Kubric scenes -> point-track ground truth -> WebDataset shards.

Packages by stage (docs/architecture.md): ``config`` -> ``scene`` (build, render, annotate one scene) with
``actors`` (people, animals) -> ``pipeline`` (many scenes: generate, scene processes, worker) -> ``formats``
(TrackSample, shards and the other on-disk formats). ``cli`` is the user-facing command line.

`import datagen` is light (no bpy/TensorFlow): `datagen.read_shards` and `datagen.formats` work without Kubric.
"""
from __future__ import annotations

__all__ = ["read_shards", "decode_sample", "CorruptSampleError"]


def __getattr__(name: str):
    # Lazy: importing the package must not pull in PyAV/numpy-heavy modules (or ever Blender).
    if name == "read_shards":
        from datagen.formats.shards import read_shards

        return read_shards
    if name in __all__:
        from datagen.formats import shard_io

        return getattr(shard_io, name)
    raise AttributeError(f"module 'datagen' has no attribute {name!r}")
