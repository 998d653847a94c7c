"""The `anny` body model TrackForge uses: its asset cache, random phenotypes, rest geometry and skinning.

anny (PyPI, code Apache-2.0, MakeHuman/MPFB2 + Face Units data CC0) is a parametric MakeHuman body:
13,718 vertices, 27,420 triangles, UVs, a 104-bone rig with skin weights, phenotype blend shapes and 52
face units (ARKit-style facial actions). We always build the SAME model configuration (``MODEL_CONFIG``),
so one cache serves every scene, preset and test.

Cache: anny parses the MakeHuman assets once and keeps the result under ``ANNY_CACHE_DIR`` (default
``~/.cache/anny``): about 0.9 GB, 1.5-6 minutes on 2 cores the first time, ~1 s to load afterwards.
``ensure_cache()`` builds it with a progress bar and says where; a file lock in the cache folder makes
parallel processes wait for one build instead of building it several times at once, and the build happens
in a scratch folder whose files are moved into place atomically (a killed build leaves nothing half-written).

Coordinates (anny's own, kept everywhere in ``datagen.actors.humans``): metres, Z up, the rest body stands at
the origin facing -y, its left side (".L" bones) towards +x, in a relaxed A-pose.

Per-frame geometry (``BodyModel.skin``): linear blend skinning of the rest vertices (+ face-unit blend
shapes per frame) with bone transforms from anny's "world-orient" forward kinematics: every bone gets a
world rotation ``G`` relative to its rest orientation and its head follows its parent. Vectorised over
frames and vertices in torch (float32; no Python loop over vertices).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# The one anny configuration (its arguments are anny's cache key: keep them fixed).
MODEL_CONFIG = dict(rig="anny", topology="anny", local_changes="none", facial_actions="all",
                    phenotypes="default")
LOCK_TIMEOUT_S = 1800.0  # waiting for another process's cache build (it takes minutes on 2 cores)

# Realistic phenotype ranges (anny parameters are in [0, 1]). gender: 0 male .. 1 female; age: anny's
# anchors are newborn (-1/3), baby (0), child (1/3), young adult (2/3), old (1), so 0.45 ~ a teenager,
# 0.67 ~ 25 years, 1.0 ~ 90 years.
ADULT_AGE = (0.55, 1.0)
CHILD_AGE = (0.36, 0.55)
CHILD_PROBABILITY = 0.12
PHENOTYPE_RANGES = {"muscle": (0.15, 0.85), "weight": (0.1, 0.85), "height": (0.1, 0.9),
                    "proportions": (0.2, 0.8)}


# ----------------------------------------------------------------------------------------------------------
# cache


def cache_dir() -> Path:
    """Where anny keeps its cache (``ANNY_CACHE_DIR`` or ``~/.cache/anny``)."""
    from anny.paths import get_anny_cache_path

    return Path(get_anny_cache_path())


def cached_model_file() -> Path | None:
    """The cache file of ``MODEL_CONFIG`` (None if this anny version hides how it names it)."""
    try:
        import hashlib
        import json

        from anny.models import build_compact_model_data
        from anny.models.model_data import (CURRENT_DATA_VERSION, RigConfig, TopologyConfig,
                                            _get_builder_metadata)

        meta = _get_builder_metadata(
            build_compact_model_data.__wrapped__, rig=RigConfig.from_string(MODEL_CONFIG["rig"]),
            topology=TopologyConfig.from_string(MODEL_CONFIG["topology"]),
            local_changes=MODEL_CONFIG["local_changes"], facial_actions=MODEL_CONFIG["facial_actions"],
            phenotypes=MODEL_CONFIG["phenotypes"], rank=None)
        digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:32]
        return cache_dir() / f"v{CURRENT_DATA_VERSION}" / f"build_compact_model_data_{digest}.safetensors"
    except Exception:  # private anny API moved: callers then take the lock every time (still correct)
        return None


def cache_ready() -> bool:
    path = cached_model_file()
    return path is not None and path.is_file()


def cache_size_bytes() -> int:
    root = cache_dir()
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0


class _StageLog(logging.Handler):
    """Turns anny's cache log lines into progress-bar stages (parse assets -> build -> compact)."""

    STAGES = {"load_data": "parsing MakeHuman assets", "build_model_data": "building the rigged model",
              "build_compact_model_data": "compacting phenotype blend shapes"}

    def __init__(self, advance):
        super().__init__(logging.INFO)
        self.advance = advance

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        for key, label in self.STAGES.items():
            if f"/{key}_" in msg or f"\\{key}_" in msg:
                done = msg.startswith("Saved") or msg.startswith("Loading cached")
                self.advance(label, done)
                return


def _build_lock(timeout_s: float = LOCK_TIMEOUT_S):
    """Exclusive lock on <cache>/trackforge_build.lock (bounded wait), so one process builds the cache; the
    wait ends in OutputBusyError naming the builder (tracker.common.output_lock)."""
    from tracker.common.output_lock import folder_lock

    root = cache_dir()
    return folder_lock(root, "building the anny cache", wait_s=timeout_s, name="trackforge_build.lock",
                       busy=f"the anny body-model cache in {{label}} is still being built by {{holder}} after a "
                            f"{timeout_s:.0f} s wait (lock file {{path}})")


def _construct(progress: bool):
    """anny.Anny(**MODEL_CONFIG) in float32; with a rich progress bar over the cache stages if building."""
    import anny
    import torch

    anny_logger = logging.getLogger("anny")
    if not progress:
        return anny.Anny(**MODEL_CONFIG, skinning_method="lbs").to(torch.float32)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("[bold]anny cache[/bold] {task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} stages"), TimeElapsedColumn(),
                   console=Console(stderr=True))
    task = bar.add_task("starting", total=3)

    def advance(label: str, done: bool) -> None:
        bar.update(task, description=label, advance=1 if done else 0)

    handler = _StageLog(advance)
    old_level = anny_logger.level
    anny_logger.addHandler(handler)
    anny_logger.setLevel(logging.INFO)
    try:
        with bar:
            model = anny.Anny(**MODEL_CONFIG, skinning_method="lbs").to(torch.float32)
            bar.update(task, completed=3, description="done")
    finally:
        anny_logger.removeHandler(handler)
        anny_logger.setLevel(old_level)
    return model


def ensure_cache(progress: bool | None = None) -> Path:
    """Build anny's cache for ``MODEL_CONFIG`` unless it is there; returns the cache folder.

    Prints (stderr) where the cache is when it has to be built, with a progress bar when ``progress``
    (default: stderr is a terminal). Safe to call from parallel processes (file lock, bounded wait).
    """
    root = cache_dir()
    if cache_ready():
        return root
    if progress is None:
        progress = sys.stderr.isatty()
    with _build_lock():
        if not cache_ready():
            print(f"building the anny body-model cache once in {root} (ANNY_CACHE_DIR; about 0.9 GB, "
                  "1-5 minutes)...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            _build_atomically(root, progress)
            print(f"anny cache ready in {root} ({cache_size_bytes() / 2**30:.2f} GB, "
                  f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return root


def _build_atomically(root: Path, progress: bool) -> None:
    """Build the cache in <root>/.build-<pid> (files already in the cache hard-linked in, so they are not
    rebuilt), then move each new file into place with os.replace: a build killed half way (timeout, Ctrl-C)
    never leaves a half-written cache file that later loads would trip over. Call with the build lock held
    (which also makes leftovers of killed builds safe to delete)."""
    import shutil

    from anny.paths import set_anny_cache_path

    for stale in root.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".build-{os.getpid()}"
    for f in root.glob("v*/*.safetensors"):
        (tmp / f.parent.name).mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, tmp / f.parent.name / f.name)
        except OSError:  # no hard links here: that stage is rebuilt (slower, still correct)
            pass
    set_anny_cache_path(tmp)
    try:
        _construct(progress)
    finally:
        set_anny_cache_path(root)
    for f in tmp.glob("v*/*.safetensors"):
        dst = root / f.parent.name / f.name
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dst)
    shutil.rmtree(tmp, ignore_errors=True)


@lru_cache(maxsize=1)
def load_model():
    """The anny model of ``MODEL_CONFIG`` (float32, dense LBS), built/loaded once per process."""
    t0 = time.perf_counter()
    ensure_cache()
    if cached_model_file() is None:  # cannot tell whether the cache is complete: build under the lock
        with _build_lock():
            model = _construct(progress=False)
    else:
        model = _construct(progress=False)
    logger.info("anny model loaded from %s in %.1f s", cache_dir(), time.perf_counter() - t0)
    return model


# ----------------------------------------------------------------------------------------------------------
# phenotypes


@dataclass(frozen=True)
class Phenotype:
    """anny's default phenotype parameters, each in [0, 1] (see the module constants for meanings)."""

    gender: float = 0.5
    age: float = 0.67
    muscle: float = 0.5
    weight: float = 0.5
    height: float = 0.5
    proportions: float = 0.5

    LABELS = ("gender", "age", "muscle", "weight", "height", "proportions")

    def vector(self) -> np.ndarray:
        """(6,) in anny's ``phenotype_labels`` order."""
        return np.array([getattr(self, k) for k in self.LABELS], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @staticmethod
    def sample(rng: np.random.Generator) -> "Phenotype":
        """A random realistic person: mostly adults (12 % children/teenagers), both sexes (with a few
        in-between bodies), moderate muscle/weight/height/proportion ranges."""
        female = rng.uniform() < 0.5
        gender = rng.uniform(0.7, 1.0) if female else rng.uniform(0.0, 0.3)
        age = rng.uniform(*CHILD_AGE) if rng.uniform() < CHILD_PROBABILITY else rng.uniform(*ADULT_AGE)
        # triangular draws keep the extremes rarer than the middle
        other = {k: float(rng.triangular(lo, (lo + hi) / 2, hi)) for k, (lo, hi) in PHENOTYPE_RANGES.items()}
        return Phenotype(gender=float(gender), age=float(age), **other)


# ----------------------------------------------------------------------------------------------------------
# geometry


@dataclass
class RestBody:
    """One phenotype's rest body (anny coordinates, see the module docstring), numpy float64.

    vertices: (V, 3); faces: (F, 3) int64; uv: (F, 3, 2) per face corner (u, v) in [0, 1], v up;
    bone_heads: (J, 3); bone_rotations: (J, 3, 3) rest world orientation of each bone;
    bone_labels / bone_parents: (J,) (root's parent -1); weights: (V, J) dense skin weights.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    bone_heads: np.ndarray
    bone_rotations: np.ndarray
    bone_labels: list[str]
    bone_parents: list[int]
    weights: np.ndarray

    def bone(self, label: str) -> int:
        return self.bone_labels.index(label)

    def head(self, label: str) -> np.ndarray:
        return self.bone_heads[self.bone_labels.index(label)]


class BodyModel:
    """Thin, vectorised wrapper of the anny model for one phenotype.

    ``skin(G, root, face_units)`` -> per-frame vertices; ``rest`` is the unposed body.
    """

    def __init__(self, phenotype: Phenotype, model=None):
        import torch

        self.model = model if model is not None else load_model()
        self.phenotype = phenotype
        self._torch = torch
        m = self.model
        labels = list(m.blendshape_labels)
        self.face_unit_labels = list(m.facial_action_labels)
        self._fa_rows = torch.tensor([labels.index(f"facial_action:{k}") for k in self.face_unit_labels])
        with torch.no_grad():
            coeffs = m._get_phenotype_blendshape_coefficients(
                torch.as_tensor(phenotype.vector()[None], dtype=m.dtype),
                torch.zeros((1, len(m.local_change_labels)), dtype=m.dtype),
                torch.zeros((1, len(self.face_unit_labels)), dtype=m.dtype))
            rest = m.get_rest_model(coeffs)
        self._rest_vertices = rest["rest_vertices"][0]  # (V, 3)
        self._rest_bone_poses = rest["rest_bone_poses"][0]  # (J, 4, 4)
        faces = m.faces.cpu().numpy().astype(np.int64)
        tc = m.texture_coordinates.cpu().numpy().astype(np.float64)
        self.rest = RestBody(
            vertices=self._rest_vertices.double().cpu().numpy(), faces=faces,
            uv=tc[m.face_texture_coordinate_indices.cpu().numpy()],
            bone_heads=rest["rest_bone_heads"][0].double().cpu().numpy(),
            bone_rotations=self._rest_bone_poses[:, :3, :3].double().cpu().numpy(),
            bone_labels=list(m.bone_labels), bone_parents=[int(p) for p in m.bone_parents],
            weights=m.dense_vertex_bone_weights.double().cpu().numpy())

    @property
    def num_vertices(self) -> int:
        return int(self._rest_vertices.shape[0])

    def skin(self, rotations: np.ndarray, root: np.ndarray, face_units: np.ndarray | None = None,
             vertex_subset: np.ndarray | None = None, extra: tuple[np.ndarray, np.ndarray] | None = None,
             chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Pose the body for T frames.

        rotations: (T, J, 3, 3) world rotation of each bone relative to its rest orientation (a bone's head
        follows its parent; only the root's position is free); root: (T, 3) world position of the root
        bone's head; face_units: (T, 52) weights in [0, 1] in ``face_unit_labels`` order (None: neutral);
        vertex_subset: indices of the vertices to return (None: all); extra: (rest points (H, 3), skin weights
        (H, J)) of more points skinned with the body (hair), returned after the body's vertices.
        Returns vertices (T, V', 3) and bone heads (T, J, 3), float64 numpy, world metres.
        """
        import anny.utils.kinematics as kinematics

        torch = self._torch
        m = self.model
        rot = torch.as_tensor(np.asarray(rotations), dtype=m.dtype)
        T = rot.shape[0]
        rest_R = self._rest_bone_poses[:, :3, :3]
        delta = torch.eye(4, dtype=m.dtype).repeat(T, rot.shape[1], 1, 1)
        delta[:, :, :3, :3] = rot @ rest_R  # world orientation D = G R_rest ("world-orient")
        delta[:, 0, :3, 3] = torch.as_tensor(np.asarray(root), dtype=m.dtype)
        idx = None if vertex_subset is None else torch.as_tensor(vertex_subset, dtype=torch.long)
        rest_v = self._rest_vertices if idx is None else self._rest_vertices[idx]
        weights = m.dense_vertex_bone_weights if idx is None else m.dense_vertex_bone_weights[idx]
        fa_shapes = None
        if face_units is not None:
            fa_shapes = m.blendshapes[self._fa_rows]  # (K, V, 3)
            fa_shapes = fa_shapes if idx is None else fa_shapes[:, idx]
            face_units = torch.as_tensor(np.asarray(face_units), dtype=m.dtype)
        if extra is not None and len(extra[0]):
            extra_v = torch.as_tensor(np.asarray(extra[0]), dtype=m.dtype)
            rest_v = torch.cat([rest_v, extra_v])
            weights = torch.cat([weights, torch.as_tensor(np.asarray(extra[1]), dtype=weights.dtype)])
            if fa_shapes is not None:  # facial units do not move the extra points
                fa_shapes = torch.cat([fa_shapes, fa_shapes.new_zeros((len(fa_shapes), len(extra_v), 3))], 1)
        verts, heads = [], []
        with torch.no_grad():
            for s in range(0, T, chunk):  # chunks over frames bound the (T, V, J) temporaries
                d = delta[s:s + chunk]
                transforms, poses = kinematics.forward_kinematic(
                    (m.kinematic_chain_levels, m.kinematic_chain_indices),
                    self._rest_bone_poses.expand(len(d), -1, -1, -1), d, "world-orient")
                v = rest_v.expand(len(d), -1, -1)
                if fa_shapes is not None:
                    v = v + torch.einsum("tk,kvc->tvc", face_units[s:s + chunk], fa_shapes)
                blend = torch.einsum("vj,tjik->tvik", weights, transforms[..., :3, :])  # (t, V, 3, 4)
                verts.append((blend[..., :3] * v[..., None, :]).sum(-1) + blend[..., 3])
                heads.append(poses[..., :3, 3])
        return torch.cat(verts).double().numpy(), torch.cat(heads).double().numpy()


def set_threads_from_env() -> None:
    """torch follows OMP_NUM_THREADS (the scene workers split the CPUs) instead of taking every core."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        import torch

        torch.set_num_threads(int(n))
