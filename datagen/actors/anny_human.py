"""``anny_human`` (the default ``human``): skinned, deforming, textured people from the `anny` package.

Everything about one person lives in ``datagen.actors.humans`` (body model and its cache, phenotypes, retargeting,
face tracks, regions, materials); this kind only turns a ``Spawn`` into one deforming Blender mesh and an
``Actor``. What is randomised per person (``rng``): phenotype (gender, age, muscle, weight, height,
proportions), skin tone, hair style and colour, eye colour, outfit (sleeves, hem, neckline, trousers /
shorts / skirt, shoes or boots) and fabrics, clip (one of ``Options.clips``, default the 15 DeepMimic clips
+ ``stand`` with the four clips spent on the ground (GROUND_CLIPS) at a quarter of the rate, for a crowd not at
all, or a BVH file of ``Options.bvh``), phase, playback speed, mirror, and the facial performance (expressions,
talking, blinks, gaze, head motion).

A group (``herd: true`` in the scene config) is a crowd: the members share the clip and stand close
together (0.5-1.1 m apart, in a loose row around the spawn point), so they overlap and occlude each other
on screen. Heading and position come from the ``Spawn``.

Mesh: ``<name>_body``, the body's 13,718 vertices / 27,420 triangles and the hair's (``datagen.actors.humans.hair``:
a shell, a curtain for long hair, a bun), one shape key per keyed frame (see ``datagen.actors.humans.actor``);
regions per polygon: ``datagen.actors.humans.regions.REGIONS`` (face, skin, hair, top,
bottom, shoes, inner). Points for the camera: ``head`` (between the eyes) and ``face_front`` (1 m in front
of the face), per rendered frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.actors.base import Actor, ActorContext, ActorKind, DeformingMesh, Spawn, ground_axes, require_known
from datagen.actors.registry import register

CROWD_SPACING = (0.5, 1.1)  # metres between neighbours of a group (herd: true)
# Clips spent mostly lying on the ground: drawn at a quarter of the others' rate unless Options.clips asks for
# them (a whole clip of a person lying still teaches little and looked odd in most scenes), and never for a crowd,
# whose members share the clip (a humans_mix crowd lay on the ground together for a whole clip).
GROUND_CLIPS = ("crawl", "getup_facedown", "getup_faceup", "roll")
GROUND_WEIGHT = 0.25


def clip_weights(pool: list[str], asked: bool, crowd: bool) -> np.ndarray:
    """(len(pool),) draw probabilities of the clips in ``pool``: the ground clips (GROUND_CLIPS) at GROUND_WEIGHT,
    for a crowd not at all, unless the options asked for clips (``asked``: every named clip as often as named)."""
    ground = 1.0 if asked else 0.0 if crowd else GROUND_WEIGHT
    w = np.array([ground if c in GROUND_CLIPS else 1.0 for c in pool])
    if not w.any():
        w[:] = 1.0
    return w / w.sum()


@dataclass
class AnnyHumanOptions:
    clips: list[str] = field(default_factory=list)  # DeepMimic clip names and/or "stand" (default: all of them)
    bvh: list[str] = field(default_factory=list)  # BVH files or folders of them, picked like clips
    expressive: float = 1.0  # scales facial expressions (0: neutral face; blinks and gaze stay)
    head_motion: float = 1.0  # scales the extra head motion (yaw/pitch/roll waves)
    hair: list[str] = field(default_factory=list)  # hair styles to draw from (default: all, datagen.actors.humans.regions)


def bvh_files(entries: list[str]) -> list[str]:
    """BVH files of ``entries`` (files, or folders searched recursively), sorted; FileNotFoundError if an
    entry does not exist or a folder holds none."""
    out = []
    for e in entries:
        p = Path(e).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() == ".bvh")
            if not found:
                raise FileNotFoundError(f"no .bvh files under {p}")
            out += found
        elif p.is_file():
            out.append(str(p))
        else:
            raise FileNotFoundError(f"BVH file or folder not found: {p}")
    return out


@register
class AnnyHuman(ActorKind):
    """A skinned anny person (see the module docstring)."""

    name = "anny_human"
    category = "human"
    Options = AnnyHumanOptions

    @classmethod
    def check_options(cls, options) -> None:
        from datagen.actors.humans import retarget
        from datagen.actors.humans.regions import HAIR_STYLES

        require_known("clips", options.clips, retarget.clip_names())
        try:
            bvh_files(options.bvh)
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
        require_known("hair styles", options.hair, list(HAIR_STYLES))
        if options.expressive < 0 or options.head_motion < 0:
            raise ValueError("expressive and head_motion must be >= 0")

    @classmethod
    def check_files(cls, options) -> None:
        """Parse every BVH file of ``options.bvh`` as a scene would (reader, forward kinematics, the canonical joints
        retargeting needs): a garbage or non-human file is named at config load, not found by every scene."""
        from tracker.common.errors import one_line
        from datagen.actors.humans import bvh as bvh_lib

        for path in bvh_files(options.bvh):
            try:
                bvh_lib.load_source(path)
            except (ValueError, OSError, ArithmeticError) as err:  # BVHError is a ValueError
                text = one_line(err)
                raise ValueError(text if text.startswith(path) else f"{path}: {text}") from None

    @classmethod
    def prepare(cls, progress: bool | None = False) -> None:
        """Build anny's cache once (with a progress bar) before scene processes start."""
        from datagen.actors.humans import body

        body.ensure_cache(progress=progress)

    def add(self, ctx: ActorContext, rng: np.random.Generator, spawn: Spawn) -> Actor:
        from datagen.actors.humans import actor as human
        from datagen.actors.humans import body, retarget

        body.set_threads_from_env()
        shared = spawn.group if spawn.group is not None else {}
        if "clip" not in shared:
            files = bvh_files(self.options.bvh)
            pool = list(self.options.clips) if self.options.clips or files else retarget.clip_names()
            pool = pool + [f"bvh:{f}" for f in files]
            p = clip_weights(pool, asked=bool(self.options.clips), crowd=spawn.group is not None)
            shared["clip"] = pool[int(rng.choice(len(pool), p=p))]
            shared["speed"] = float(rng.uniform(*human.SPEED_RANGE))
        position, heading = np.asarray(spawn.position, float), spawn.heading
        if spawn.group is not None and spawn.index > 0:  # crowd: a loose row, neighbours 0.5-1.1 m apart
            _, left = ground_axes(heading)
            rank, side = spawn.formation_slot()
            step = float(rng.uniform(*CROWD_SPACING))
            # -side: the row fills from the right first (as it always has, so fixed seeds keep their crowds)
            position = position + left * step * rank * -side + rng.normal(0, 0.25, 2)
            heading += float(rng.normal(0, 0.3))
        motion = human.pose_human(rng, ctx.num_frames, ctx.fps, clip=shared["clip"],
                                  speed=shared["speed"] * spawn.tempo(rng),
                                  heading=heading, position=position, expressive=self.options.expressive,
                                  head_motion=self.options.head_motion, hair_styles=list(self.options.hair) or None)
        obj = human.add_human_object(ctx.bpy, motion, f"{ctx.name}_body", ctx.frame_start - 1)
        rendered = slice(1, -1)
        meta = {"kind": self.name, "name": ctx.name, **motion.meta,
                "crowd_index": spawn.index, "crowd_size": spawn.group_size, "meshes": [obj.name]}
        return Actor(name=ctx.name, kind=self.name, category=self.category,
                     trajectory=motion.root[rendered, :2], radius=0.45,
                     meshes=[DeformingMesh(obj, motion.region_names, motion.regions)], meta=meta,
                     points={"head": motion.head[rendered],
                             "face_front": motion.head[rendered] + motion.head_forward[rendered]})
