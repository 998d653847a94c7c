"""Shared pytest fixtures: the location of ../shared (fixtures, spec, demo clips)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("TRACKFORGE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session", autouse=True)
def process_temp_dir(tmp_path_factory) -> Iterator[Path]:
    """$TMPDIR of every process the tests start (generators, scene processes, Blender, trainers) and of Blender in
    this one: a folder of this pytest session's, so that what processes killed on purpose cannot remove (Blender's
    session folders, a generator's scene folder) stays out of the machine's temp folder; pytest keeps the last
    three sessions' folders. Set before any test runs (this process's own `tempfile` default is already fixed)."""
    folder = tmp_path_factory.mktemp("process-tmp")
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous


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


# --------------------------------------------------------------------------------------- helpers
# Test modules import these with `from tests.conftest import ...`.
def procs_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (e.g. an output folder: scene processes left behind)."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and text in (d / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


@contextmanager
def small_disk(path: Path, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (created) for the block: a disk that fills up (fill_disk) or turns
    read-only (read_only) for real. Tests run as root, where chmod does not stop a write: this does. Skips the test
    with the reason where mounting is not allowed."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs for the test: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def read_only(path: Path) -> None:
    """Remount the small_disk at `path` read-only (what it holds stays readable)."""
    import subprocess

    done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot remount {path} read-only: {done.stderr.decode().strip()}")


def fill_disk(path: Path) -> Path:
    """Fill the file system of `path` (a small_disk) with `path/filler` until the kernel says ENOSPC."""
    import errno

    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:  # bounded: the tmpfs is small
            os.write(fd, bytes(2**20))
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    return filler


def flow_errors(s, dbg: dict, tracks=None):
    """Ground truth vs Blender's forward optical flow (`dbg["flow"]` of render_scene(debug=dbg), rendered at exact
    pixel centres by the GT pass): for the tracks `tracks` (indices; default all) queried before the last frame,
    |GT displacement t -> t + 1 - flow at the query pixel|. Returns (errors (K,), displacements (K, 2)) of those
    visible at t + 1, and the tracks compared (M,)."""
    import numpy as np

    t = np.asarray(s.meta["query_frames"])
    q = np.flatnonzero(t < s.num_frames - 1)
    if tracks is not None:
        q = np.intersect1d(q, tracks)
    t = t[q]
    x, y = np.rint(s.tracks[t, q]).astype(int).T
    ok = s.visibility[t + 1, q]
    disp = s.tracks[t + 1, q] - s.tracks[t, q]
    flow = dbg["flow"][t, y, x][:, ::-1]  # Kubric forward flow: (d_row, d_col) = (dy, dx) pixels
    return np.linalg.norm(flow - disp, axis=1)[ok], disp[ok], q


def moving_square_video(T: int = 6, H: int = 40, W: int = 56, size: int = 12, x0: int = 4, y0: int = 10,
                        step: int = 2, seed: int = 0):
    """A textured size x size square moving right by `step` >= 0 pixels a frame over a textured background: (video uint8
    (T, H, W, 3), masks uint8 (T, H, W) with id 1 on the square, 0 elsewhere). Frame t covers columns
    x0 + step * t .. x0 + step * t + size - 1 and rows y0 .. y0 + size - 1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, (H, W + step * T, 3), dtype=np.uint8)
    texture = rng.integers(130, 256, (size, size, 3), dtype=np.uint8)
    video = np.stack([background[:, :W].copy() for _ in range(T)])
    masks = np.zeros((T, H, W), np.uint8)
    for t in range(T):  # test data: a handful of frames
        x = x0 + step * t
        video[t, y0:y0 + size, x:x + size] = texture[:, : max(0, min(size, W - x))]
        masks[t, y0:y0 + size, x:x + size] = 1
    return video, masks


def write_davis_sequence(root: Path, name: str, video, masks, *, palette: bool = False) -> Path:
    """Write a sequence in the DAVIS layout under `root`: JPEGImages/480p/<name>/00000.jpg ... (JPEG, quality 95) and
    Annotations/480p/<name>/00000.png ...: grayscale 0/255 (palette=False, ids > 0 become 255: DAVIS-2016) or
    palette PNGs holding the ids (palette=True: DAVIS-2017). Returns `root`."""
    import numpy as np
    from PIL import Image

    frames, annots = root / "JPEGImages" / "480p" / name, root / "Annotations" / "480p" / name
    frames.mkdir(parents=True, exist_ok=True)
    annots.mkdir(parents=True, exist_ok=True)
    for t, (frame, mask) in enumerate(zip(video, masks)):
        Image.fromarray(frame).save(frames / f"{t:05d}.jpg", quality=95)
        if palette:
            mask = np.ascontiguousarray(mask, np.uint8)
            im = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
            im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [200] * (3 * 252) + [224, 224, 192])
        else:
            im = Image.fromarray(np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8))  # mode L
        im.save(annots / f"{t:05d}.png")
    return root


# --------------------------------------------------------------------------------------- datagen shards
TINY_DATA_CONFIG = REPO_ROOT / "configs" / "data" / "tiny.yaml"
TEST_DATA_ROOT = REPO_ROOT / ".cache" / "test-shards"
_LOCK_WAIT_S = 1800.0  # another session rendering the same data set (about a minute) or pruning it


def _data_key(name: str, cfg) -> str:
    """'<name>-<hash of the resolved config and every datagen source file>': a code change renders anew."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for path in sorted((REPO_ROOT / "datagen").rglob("*.py")):  # actor kinds live in datagen/actors/
        h.update(str(path.relative_to(REPO_ROOT)).encode() + path.read_bytes())
    return f"{name}-{h.hexdigest()[:16]}"


def _flock(fh, mode: int, what: str) -> None:
    """flock with a bounded wait (the test data locks are shared/exclusive, unlike tracker.common.output_lock's)."""
    import fcntl
    import time

    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fh, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {_LOCK_WAIT_S:.0f} s for another pytest session holding {what}")
            time.sleep(0.2)


def shared_data_set(name: str, overrides: list[str], root: Path = TEST_DATA_ROOT) -> Iterator[Path]:
    """Generator for a session fixture: configs/data/tiny.yaml with `overrides`, rendered once into
    <repo>/.cache/test-shards/<name>-<hash> (gitignored) and shared by every pytest session of this checkout.

    Concurrent sessions: a shared flock on `<key>.lock` is held for the whole session (the data set is in use), an
    exclusive one while rendering (one session renders, the others wait and reuse it). A data set of the same
    name made by other code or another config is deleted only when no session holds it; lock files are never
    deleted (deleting a lock file races with a session that has just opened it). So a run renders each data set
    at most once, and never deletes one another session reads.
    """
    import fcntl

    from datagen import actors
    from datagen.config import load_data_config
    from datagen.pipeline.generate import generate_dataset
    from datagen.pipeline.layout import missing_shards

    cfg = load_data_config(TINY_DATA_CONFIG, overrides)
    actors.prepare([g.kind for g in cfg.scene.actor_groups()])  # asset caches (anny) once, not per scene
    root.mkdir(parents=True, exist_ok=True)
    key = _data_key(name, cfg)
    out = root / key
    with open(root / f"{key}.lock", "a") as lock:
        for _ in range(3):  # a pruning session may slip in while a shared lock turns exclusive: look again
            _flock(lock, fcntl.LOCK_SH, out)
            if not missing_shards(cfg, out):
                break
            _flock(lock, fcntl.LOCK_EX, out)  # not atomic: the shared lock is dropped first
            if missing_shards(cfg, out):  # nobody rendered it meanwhile
                generate_dataset(cfg, out, progress=False)
        else:
            raise RuntimeError(f"test data set {out} was deleted three times while this session rendered it")
        _prune_stale(name, keep=key, root=root)
        yield out  # the shared lock stays until the session ends


def _prune_stale(name: str, keep: str, root: Path = TEST_DATA_ROOT) -> None:
    """Delete the data sets <name>-* other than `keep` (older code or config) that no session holds."""
    import fcntl
    import shutil

    locks = list(root.glob(f"{name}-*.lock"))
    if name == "tiny":  # the layout before data sets had names: <hash> (always the tiny one)
        locks += [p for p in root.glob("*.lock") if len(p.stem) == 16 and all(c in "0123456789abcdef" for c in p.stem)]
    for lock_path in locks:
        key = lock_path.name[: -len(".lock")]
        if key == keep or not (root / key).exists():
            continue
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            shutil.rmtree(root / key, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_shards() -> Iterator[Path]:
    """A tiny REAL rendered data set (configs/data/tiny.yaml: 3 scenes, 64x64, 6 frames, objects + a human and an
    animal in each, 2 shards: shard-000000.tar with 2 samples, shard-000001.tar with 1), made with
    generate_dataset (~30-60 s on 2 cores, once per checkout and code version: see shared_data_set). Yields the
    folder (it also holds dataset.json with the resolved config)."""
    yield from shared_data_set("tiny", [])


# configs/data/tiny.yaml (64x64, objects + human + animal) with 12 frames and a moving camera, so that tracks
# move and the zero-motion baseline is beatable; 4 scenes, 2 per shard (the last shard is held out).
MOVING_OVERRIDES = [
    "scene.num_frames=12",
    "scene.camera_motion=[linear,orbit]",
    "generate.num_scenes=4",
    "generate.scenes_per_shard=2",
    "generate.workers=2",
]


@pytest.fixture(scope="session")
def moving_shards() -> Iterator[Path]:
    """The training tests' data set (MOVING_OVERRIDES), shared like tiny_shards."""
    yield from shared_data_set("moving", MOVING_OVERRIDES)


def row_of_materials(bpy, kinds: list[str], size: float, add_mesh, make) -> None:
    """One mesh per kind in a row along x, `size` apart (`add_mesh(size=, location=)`: a bpy.ops primitive), each
    with `make(kind, i)` as its material, or a plain grey one (0.2) for the kind "plain"."""
    n = len(kinds)
    for i, kind in enumerate(kinds):
        add_mesh(size=size, location=((i - (n - 1) / 2) * size, 0.0, 0.0))
        if kind == "plain":
            mat = bpy.data.materials.new("plain")
            mat.use_nodes = True
            mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.2, 0.2, 0.2, 1.0)
        else:
            mat = make(kind, i)
        bpy.context.object.data.materials.append(mat)
