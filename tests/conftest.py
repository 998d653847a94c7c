"""Shared pytest fixtures: the location of ../shared (fixtures, spec, demo clips)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("TRACKFORGE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder; tests that need it skip with a clear message when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared material not found at {SHARED_DIR} (set TRACKFORGE_SHARED to its path)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def cotracker3_fixtures(shared_dir: Path) -> Path:
    """../shared/fixtures/cotracker3: official reference weights, inputs and outputs."""
    path = shared_dir / "fixtures" / "cotracker3"
    if not path.is_dir():
        pytest.skip(f"CoTracker3 fixtures not found at {path}")
    return path


# --------------------------------------------------------------------------------------- datagen shards
TINY_DATA_CONFIG = REPO_ROOT / "configs" / "data" / "tiny.yaml"


def _tiny_shards_key(cfg) -> str:
    """Cache key: the resolved config plus every datagen source file (a code change re-renders)."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for path in sorted((REPO_ROOT / "datagen").rglob("*.py")):  # actor kinds live in datagen/actors/
        h.update(str(path.relative_to(REPO_ROOT)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_shards():
    """A tiny REAL rendered data set (configs/data/tiny.yaml: 3 scenes, 64x64, 6 frames, objects + a human and an
    animal in each, 2 shards: shard-000000.tar with 2 samples, shard-000001.tar with 1), made with
    generate_dataset. Yields the folder (it also holds dataset.json with the resolved config).

    Cached in <repo>/.cache/test-shards/<hash of config + datagen sources> (gitignored), so repeated local runs
    reuse it while a fresh clone renders it once (~30-60 s on 2 cores). File locks let concurrent sessions share
    one render: exclusive while rendering, shared while a session uses it (stale caches of older code are deleted
    only when no session holds them).
    """
    import fcntl

    from datagen.config import load_data_config
    from datagen.generate import generate_dataset, missing_shards

    from datagen import actors

    cfg = load_data_config(TINY_DATA_CONFIG, [])
    actors.prepare([g.kind for g in cfg.scene.actor_groups()])  # asset caches (anny) once, not per scene
    root = REPO_ROOT / ".cache" / "test-shards"
    root.mkdir(parents=True, exist_ok=True)
    out = root / _tiny_shards_key(cfg)
    lock = open(root / f"{out.name}.lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)
        if missing_shards(cfg, out):
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(lock, fcntl.LOCK_EX)
            if missing_shards(cfg, out):  # nobody rendered it meanwhile
                generate_dataset(cfg, out, progress=False)
            fcntl.flock(lock, fcntl.LOCK_SH)
        _prune_stale_tiny_shards(root, keep=out.name)
        yield out
    finally:
        lock.close()


def _prune_stale_tiny_shards(root: Path, keep: str) -> None:
    """Delete cached data sets of older code/configs (skipping any another session holds a lock on)."""
    import fcntl
    import shutil

    for lock_path in root.glob("*.lock"):
        name = lock_path.name[: -len(".lock")]
        if name == keep:
            continue
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(root / name, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
