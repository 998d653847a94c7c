"""TrackForge data generation: Kubric scenes -> point-track ground truth -> WebDataset shards.

`import datagen` is light (no bpy/TensorFlow): `datagen.read_shards` and `datagen.shards` work without Kubric.
"""
from __future__ import annotations

__all__ = ["read_shards", "decode_sample", "CorruptSampleError"]


def __getattr__(name: str):
    # Lazy: importing the package must not pull in PyAV/numpy-heavy modules (or ever Blender).
    if name in __all__:
        from datagen import shards

        return getattr(shards, name)
    raise AttributeError(f"module 'datagen' has no attribute {name!r}")
