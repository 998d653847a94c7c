"""A data set's layout, decided by its config alone: which scenes go in which shard, each scene's seed and key, which
shards a task of a job array owns, and the manifest (dataset.json) that ties an output folder to one config.

No rendering and no processes here (datagen.pipeline.generate runs them); also used by `datagen complete` to tell
what is missing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from datagen.config import DataConfig
from datagen.formats.shard_io import DATASET_FILE, VIDEO_EXTS, shard_name
from tracker.common.atomic import write_atomic


# ---------------------------------------------------------------------------------------------- naming
def derive_seed(base_seed: int, scene_index: int, attempt: int) -> int:
    """Deterministic 31-bit seed for (base_seed, scene_index, attempt); attempts give unrelated seeds."""
    import numpy as np

    state = np.random.SeedSequence([base_seed, scene_index, attempt]).generate_state(1, np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def scene_key(scene_index: int) -> str:
    return f"scene-{scene_index:06d}"


def shard_scenes(cfg: DataConfig, shard: int) -> range:
    """Scene indices stored in shard `shard` (the last shard may be short)."""
    g = cfg.generate
    return range(shard * g.scenes_per_shard, min((shard + 1) * g.scenes_per_shard, g.num_scenes))


def task_shards(num_shards: int, task_index: int, num_tasks: int) -> list[int]:
    """Shards of one task: shard s belongs to task (s * num_tasks) // num_shards (contiguous blocks)."""
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise ValueError(f"task index {task_index} out of range for {num_tasks} task(s)")
    return [s for s in range(num_shards) if (s * num_tasks) // num_shards == task_index]


def effective_timeout(cfg: DataConfig) -> float:
    t = cfg.generate.timeout_s
    return float(t if t is not None else cfg.scene.render_timeout_s)


# ---------------------------------------------------------------------------------------------- manifest
def dataset_manifest(cfg: DataConfig) -> dict:
    return {
        "format": "trackforge-webdataset",
        "version": 1,
        "content_hash": cfg.content_hash(),
        "num_scenes": cfg.generate.num_scenes,
        "scenes_per_shard": cfg.generate.scenes_per_shard,
        "num_shards": cfg.num_shards,
        "shards": [shard_name(s) for s in range(cfg.num_shards)],
        "members": [f"video.{VIDEO_EXTS[cfg.generate.video_codec]}", "tracks.npy", "visibility.npy",
                    "tracks3d.npy", "meta.json"],
        "config": cfg.to_dict(),
    }


def write_json_atomic(path: Path, data: dict) -> None:
    # Plain json.dumps, not atomic.write_json: a config value of inf (a timeout) must read back as inf.
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_manifest(cfg: DataConfig, out_dir: Path) -> str | None:
    """None if out_dir has no manifest or one for this config, else why it does not match."""
    path = out_dir / DATASET_FILE
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        old_hash = old["content_hash"]
    except (ValueError, KeyError, TypeError):
        return f"{path} is unreadable"
    if old_hash != cfg.content_hash():
        return (f"{out_dir} holds a data set made with a different config (content hash {old_hash} != "
                f"{cfg.content_hash()}); use another --out or delete it")
    return None


def missing_shards(cfg: DataConfig, out_dir: str | os.PathLike) -> list[str]:
    """Shard files of the config that do not exist in out_dir (all of them if out_dir has another data set)."""
    out_dir = Path(out_dir)
    if check_manifest(cfg, out_dir) is not None:
        return [shard_name(s) for s in range(cfg.num_shards)]
    return [shard_name(s) for s in range(cfg.num_shards) if not (out_dir / shard_name(s)).is_file()]
