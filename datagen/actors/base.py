"""The contract between the scene builder and an actor kind (no Blender import here).

An actor kind is a class (subclass of ``ActorKind``) registered under a name (``datagen.actors.registry``).
It owns everything specific to it: its assets, motion clips, size ranges and materials. The scene builder
(datagen.scene) only asks the registry for the kind named in the config, hands it an ``ActorContext`` and a
``Spawn`` (where to stand), and receives an ``Actor`` describing what was added:

* ``meshes``: ordinary Blender mesh objects whose vertices move per frame (armature, shape keys keyed per
  frame, any modifier Blender evaluates), with ONE fixed topology over all frames and geometry defined for
  scene frames ``frame_start - 1 .. frame_end + 1`` (motion blur and the forward-flow pass need the
  neighbours). The annotator reads their per-frame vertices back from Blender's evaluated mesh
  (``obj.evaluated_get(depsgraph)``), so whatever Blender draws is what is annotated. Each mesh gets its own
  segmentation id (datagen.scene assigns it) and per-polygon region labels.
* ``category`` ("human", "animal", ...), ``meta`` (JSON-able), the ground trajectory (objects keep clear of it)
  and optional named world points per frame (e.g. "head") the camera can aim at.

Region labels: ``DeformingMesh.region_names`` + ``polygon_region`` (P,) int into it, one per polygon of the
evaluated mesh; the region "face" marks facial polygons (stats report the share of points on faces).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass
class Spawn:
    """Where the scene builder wants an actor.

    position: ground (x, y) of the actor's root at the middle frame (for a herd: the herd's centre);
    heading: yaw (rad, about world z, 0 = +x) the actor faces at the middle frame;
    group: dict shared by the members of one group (a herd): the first member may store its choices (species,
    clip, ...) there and the others reuse them; None when the actor is alone;
    index, group_size: this member's index in its group and the group's size. Members stand by
    ``formation_slot`` and vary their playback speed by ``tempo`` (one rule for every kind).
    """

    position: tuple[float, float]
    heading: float
    group: dict | None = None
    index: int = 0
    group_size: int = 1

    def formation_slot(self) -> tuple[int, int]:
        """(rank, side) of this member in its group's formation, the rule every kind places members by.

        The first member (index 0) leads at the spawn point, rank 0; the others pair up around it, rank
        ``(index + 1) // 2``, on alternating sides: side +1 for odd indices, -1 for even ones. Which way a side
        points and how far apart ranks stand is the kind's choice (a crowd's row, a herd's stagger).
        """
        return (self.index + 1) // 2, (1 if self.index % 2 else -1)

    def tempo(self, rng: np.random.Generator) -> float:
        """Playback-speed factor of this member: 1 for the leader (no draw), else uniform in 0.95-1.05 (one draw
        from ``rng``), so a group moves together without marching in step."""
        return float(rng.uniform(0.95, 1.05)) if self.index else 1.0


def ground_axes(heading: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit ground vectors (2,) of a yaw ``heading`` (rad about world z, 0 = +x): (forward, left)."""
    return np.array([np.cos(heading), np.sin(heading)]), np.array([-np.sin(heading), np.cos(heading)])


@dataclass
class ActorContext:
    """What an actor kind may use while adding itself to the scene.

    scene: the kb.Scene; renderer: Kubric's Blender renderer; bpy: the bpy module; workdir: scratch folder of
    this scene (write generated files under workdir / "actors" / name); cache_dir: the asset cache (shared
    between scenes and processes; write atomically); name: unique actor name in this scene ("human00",
    "animal01", ...), use it as the prefix of every Blender/Kubric object name; frame_start, num_frames, fps:
    the rendered frames are frame_start .. frame_start + num_frames - 1.
    """

    scene: Any
    renderer: Any
    bpy: Any
    workdir: Path
    cache_dir: Path
    name: str
    frame_start: int
    num_frames: int
    fps: float

    @property
    def key_frames(self) -> np.ndarray:
        """Scene frames an actor must define: one before and one after the rendered frames."""
        return np.arange(self.frame_start - 1, self.frame_start + self.num_frames + 1)


@dataclass
class DeformingMesh:
    """A Blender mesh object whose vertices move per frame (see the module docstring)."""

    obj: Any
    region_names: list[str]
    polygon_region: np.ndarray  # (P,) int64 index into region_names, one per polygon of the evaluated mesh

    def __post_init__(self) -> None:
        self.polygon_region = np.asarray(self.polygon_region, dtype=np.int64)
        if len(self.polygon_region) and (self.polygon_region.min() < 0
                                         or self.polygon_region.max() >= len(self.region_names)):
            raise ValueError("polygon_region indexes outside region_names")


@dataclass
class Actor:
    """What an actor kind added to the scene.

    trajectory: (T, 2) ground (x, y) of the root at the rendered frames; radius: metres around it that objects
    keep clear of; points: named (T, 3) world points per rendered frame (e.g. "head") the camera may aim at.
    """

    name: str
    kind: str
    category: str
    trajectory: np.ndarray
    radius: float
    meshes: list[DeformingMesh] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    points: dict[str, np.ndarray] = field(default_factory=dict)


def require_known(what: str, values, choices: list) -> None:
    """ValueError "unknown <what> [...]; choices: [...]" when some of ``values`` are not in ``choices`` (option checks
    of the kinds: clip, species, hair style names)."""
    bad = [v for v in values if v not in choices]
    if bad:
        raise ValueError(f"unknown {what} {bad}; choices: {choices}")


@dataclass
class NoOptions:
    """Kinds without options."""


class ActorKind:
    """Base class of actor kinds. Subclasses set ``name``, ``category`` and ``Options`` (a dataclass of
    kind-specific options, filled from the scene config's ``actors[i].options``) and implement ``add``."""

    name: ClassVar[str] = ""
    category: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: dict | None = None):
        self.options = self.parse_options(options or {})

    @classmethod
    def parse_options(cls, options: dict):
        """Options dataclass from a plain dict; raises ValueError naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for actor kind {cls.name!r}; known: {sorted(known)}")
        opts = cls.Options(**options)
        cls.check_options(opts)
        return opts

    @classmethod
    def check_options(cls, options) -> None:
        """Raise ValueError for bad option values (called at config load time, no Blender needed)."""

    @classmethod
    def check_files(cls, options) -> None:
        """Read the files `options` name (e.g. motion files) and raise ValueError, one line naming the file, for
        one that cannot be used. Called once when a data config is loaded (SceneConfig.check_actor_files), not in
        every scene (default: nothing to read)."""

    @classmethod
    def prepare(cls, progress: bool | None = False) -> None:
        """Build whatever cache the kind's assets need, once per machine (default: nothing). Called by
        ``datagen generate`` (and the test fixtures) before any scene process starts; ``progress``: show a
        progress bar (None: when stderr is a terminal). Must be safe to call again (a no-op when the cache is
        there) and from parallel processes."""

    def add(self, ctx: ActorContext, rng: np.random.Generator, spawn: Spawn) -> Actor:
        raise NotImplementedError
