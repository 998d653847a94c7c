"""The two mocap-driven rigid-part actors of ``datagen.articulated`` as kinds: ``capsule_human`` (pybullet_data's
DeepMimic humanoid made of capsules, 15 clips) and ``laikago`` (the Laikago quadruped with a procedural head
and tail, its walk clip). Assets, clips, size ranges and materials live in datagen.articulated/mocap; every
part is a rigid Kubric object keyframed per frame, so the ground truth moves each point with its part.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.actors.base import Actor, ActorContext, ActorKind, RigidPart, Spawn
from datagen.actors.registry import register

# part (pybullet link) name -> region label
_HUMAN_REGIONS = {"neck": "head", "hair": "head", "chest": "torso", "root": "torso", "right_hip": "leg",
                  "left_hip": "leg", "right_knee": "leg", "left_knee": "leg", "right_ankle": "foot",
                  "left_ankle": "foot", "right_shoulder": "arm", "left_shoulder": "arm", "right_elbow": "arm",
                  "left_elbow": "arm", "right_wrist": "hand", "left_wrist": "hand"}


def _laikago_region(part: str) -> str:
    if part in ("head", "tail"):
        return part
    return "leg" if ("leg" in part or "hip" in part) else "body"


@dataclass
class MocapOptions:
    clip: str = ""  # one clip for every actor of this group ("" = random, see datagen.mocap.list_clips)
    vary_body: bool = True  # random limb lengths / girth


class _MocapRigid(ActorKind):
    """Shared code: ``mocap_kind`` is datagen.articulated's kind ("human" | "animal")."""

    Options = MocapOptions
    mocap_kind = ""
    radius = 0.5
    head_part = ""

    @classmethod
    def check_options(cls, options) -> None:
        from datagen import mocap

        if options.clip and options.clip not in mocap.list_clips(cls.mocap_kind):
            raise ValueError(f"unknown clip {options.clip!r} for {cls.name}; choices: "
                             f"{mocap.list_clips(cls.mocap_kind)}")

    def region(self, part: str) -> str:
        raise NotImplementedError

    def add(self, ctx: ActorContext, rng: np.random.Generator, spawn: Spawn) -> Actor:
        from datagen import articulated

        heading = spawn.heading
        position = spawn.position
        if spawn.group is not None and spawn.index > 0:  # a group walks side by side, 1.2 m apart
            side = np.array([-np.sin(heading), np.cos(heading)])
            position = tuple(np.asarray(position) + side * 1.2 * spawn.index * (-1) ** spawn.index)
        info = articulated.add_articulated_actor(
            ctx.scene, self.mocap_kind, rng, ctx.num_frames, ctx.fps, ctx.workdir, clip=self.options.clip or None,
            position=position, heading=heading, vary_body=self.options.vary_body, name=ctx.name)
        parts = [RigidPart(p.obj, self.region(p.name)) for p in info.parts]
        names = [p.name for p in info.parts]
        points = {}
        if self.head_part in names:
            points["head"] = info.poses[:, names.index(self.head_part), :3, 3]
        meta = {"kind": self.name, **info.meta()}
        return Actor(name=ctx.name, kind=self.name, category=self.category, trajectory=info.poses[:, 0, :2, 3],
                     radius=self.radius, rigid_parts=parts, meta=meta, points=points)


@register
class CapsuleHuman(_MocapRigid):
    """pybullet_data's DeepMimic humanoid (capsules, spheres, boxes; random clothes) playing its mocap clips."""

    name = "capsule_human"
    category = "human"
    mocap_kind = "human"
    radius = 0.5
    head_part = "neck"

    def region(self, part: str) -> str:
        return _HUMAN_REGIONS.get(part, "body")


@register
class Laikago(_MocapRigid):
    """pybullet_data's Laikago robot dog with a procedural head and tail, walking."""

    name = "laikago"
    category = "animal"
    mocap_kind = "animal"
    radius = 0.6
    head_part = "head"

    def region(self, part: str) -> str:
        return _laikago_region(part)
