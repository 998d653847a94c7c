"""Offline asset catalog: meshes and textures shipped in the `pybullet_data` wheel, plus optional
Kubric asset sources (GSO / ShapeNet / HDRI manifests given by local path or URL).

pybullet_data meshes come in arbitrary units, origins and (for random_urdfs) as several convex parts.
`prepare_mesh` normalises each into a cached, single-object OBJ (centred on its bounding box, longest
side 1, z up, UVs kept when present) plus a matching URDF (same mesh for collision, inertial frame at
the origin). Blender imports that OBJ with the identity axis mapping, so Blender, PyBullet and the
ground-truth code all see the same object-local frame. Only numpy/trimesh here (no Blender).
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker.common.atomic import atomic_file, write_atomic

# Named pybullet_data meshes worth rendering (path relative to pybullet_data; missing ones skipped).
NAMED_MESHES = {
    "duck": "duck.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "bunny": "bunny.obj",
    "mug": "objects/mug.obj",
    "soccerball": "soccerball.obj",
    "torus": "torus/torus_textured.obj",
    "lego": "lego/lego.obj",
    "sphere": "sphere_smooth.obj",
    "stone": "stone.obj",
    "cube": "cube.obj",
    "toy_cylinder": "toys/cylinder.obj",
    "toy_prism": "toys/prism.obj",
    "toy_shape_sorter": "toys/shape_sorter.obj",
    "jenga": "jenga/jenga.obj",
    "domino": "domino/domino.obj",
}
# Image textures (floor, dome, objects) shipped with pybullet_data.
IMAGE_TEXTURES = [
    "checker_grid.jpg", "tex256.png", "uvmap.png", "checker_blue.png", "colors16.png", "cube.png",
    "duckCM.png", "jenga/jenga.png", "domino/domino.jpg", "tray/tray.jpg", "table/table.png",
    "roboschool/models_outdoor/stadium/stadium_grass.jpg", "racecar/meshes/wheel.jpg",
    "laikago/laikago_tex.jpg",
]
NUM_RANDOM_URDFS = 1000


def pybullet_data_dir() -> Path:
    import pybullet_data  # tiny pure-data package

    return Path(pybullet_data.getDataPath())


@functools.lru_cache(maxsize=1)
def _pybullet_object_ids(root: str) -> tuple[str, ...]:
    root = Path(root)
    ids = [name for name, rel in NAMED_MESHES.items() if (root / rel).is_file()]
    ids += [f"random_urdfs/{i:03d}" for i in range(NUM_RANDOM_URDFS)
            if (root / "random_urdfs" / f"{i:03d}" / f"{i:03d}.obj").is_file()]
    return tuple(ids)


def pybullet_object_ids() -> list[str]:
    """All usable pybullet_data object ids: named meshes, then "random_urdfs/000".."999" (the folder is listed
    once per process)."""
    return list(_pybullet_object_ids(str(pybullet_data_dir())))


def pybullet_mesh_path(asset_id: str) -> Path:
    root = pybullet_data_dir()
    if asset_id.startswith("random_urdfs/"):
        n = asset_id.split("/", 1)[1]
        return root / "random_urdfs" / n / f"{n}.obj"
    if asset_id not in NAMED_MESHES:
        raise KeyError(f"unknown pybullet_data asset {asset_id!r}")
    return root / NAMED_MESHES[asset_id]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr", ".hdr", ".webp")
HDRI_SUFFIXES = (".exr", ".hdr")


def expand_files(entries, suffixes: tuple[str, ...], what: str) -> list[str]:
    """Files given directly, plus the files with `suffixes` inside given folders (sorted); FileNotFoundError
    naming the entry for anything that does not exist."""
    out = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in suffixes)
            if not found:
                raise FileNotFoundError(f"{what} folder {path} holds no {'/'.join(suffixes)} file")
            out += found
        elif path.is_file() or "://" in str(entry):
            out.append(str(entry))
        else:
            raise FileNotFoundError(f"{what} {entry} does not exist")
    return out


def image_texture_paths(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """pybullet_data image textures that exist here, plus `extra` image files or folders of images."""
    root = pybullet_data_dir()
    shipped = [str(root / p) for p in IMAGE_TEXTURES if (root / p).is_file()]
    return shipped + expand_files(extra, IMAGE_SUFFIXES, "image texture")


# ---------------------------------------------------------------------------------------------------- HDRIs
# Offline CC0 HDRIs: Blender's 8 studio-light worlds (bpy wheel, Poly Haven / Greg Zaal, CC0) and the 18 of the
# npm package @pmndrs/assets (Poly Haven HDRIs resized to 512 px, CC0), which `make env` fetches with
# `npm pack` into <asset cache>/npm; the EXRs ship base64-encoded inside JS modules and are decoded once into
# <asset cache>/hdri/pmndrs.
PMNDRS_PACKAGE = "@pmndrs/assets"
PMNDRS_VERSION = "1.7.0"


def blender_hdri_paths() -> list[str]:
    """Blender's bundled studio-light worlds (datafiles/studiolights/world/*.exr of the bpy wheel)."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(list(spec.submodule_search_locations)[0])
    return sorted(str(p) for p in root.glob("*/datafiles/studiolights/world/*.exr"))


def pmndrs_hdri_paths(cache_dir: Path | None = None) -> list[str]:
    """@pmndrs/assets' HDRIs as EXR files in the cache (decoded from the npm tarball on first use); [] when the
    tarball is not in <cache>/npm (run `make env`, which fetches it with npm)."""
    import base64
    import tarfile

    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    out = cache_dir / "hdri" / "pmndrs"
    done = out / ".complete"
    if not done.is_file():
        tarballs = sorted((cache_dir / "npm").glob("pmndrs-assets-*.tgz"))
        if not tarballs:
            return []
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarballs[-1], "r:gz") as tar:
            for member in tar.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                if not (member.isfile() and member.name.startswith("package/hdri/") and name.endswith(".exr.js")):
                    continue
                text = tar.extractfile(member).read().decode()
                payload = text.split("base64,", 1)[1].split("'", 1)[0].split('"', 1)[0]
                data = base64.b64decode(payload)
                if not data.startswith(b"\x76\x2f\x31\x01"):  # OpenEXR magic number
                    raise ValueError(f"{tarballs[-1]}:{member.name} does not hold an EXR image")
                write_atomic(out / name[: -len(".js")], data)
        write_atomic(done, tarballs[-1].name + "\n")
    return sorted(str(p) for p in out.glob("*.exr"))


def hdri_paths(extra_dirs: list[str] | tuple[str, ...] = (), cache_dir: Path | None = None) -> list[str]:
    """Every offline HDRI: Blender's, @pmndrs/assets' (when fetched) and those in `extra_dirs`."""
    return blender_hdri_paths() + pmndrs_hdri_paths(cache_dir) + expand_files(extra_dirs, HDRI_SUFFIXES, "HDRI")


@dataclass(frozen=True)
class PreparedMesh:
    asset_id: str
    obj_path: str  # normalised OBJ: longest side 1, bbox-centred, z up
    urdf_path: str
    extents: tuple[float, float, float]  # bbox size of the normalised mesh (max = 1)
    has_uv: bool


def default_cache_dir() -> Path:
    return Path(os.environ.get("TRACKFORGE_ASSET_CACHE", Path.home() / ".cache" / "trackforge" / "assets"))


def _write_obj(path: Path, v: np.ndarray, f: np.ndarray, uv: np.ndarray | None) -> None:
    lines = ["# normalised by trackforge datagen.scene.assets", "o mesh"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    if uv is not None:
        lines += [f"vt {a:.6f} {b:.6f}" for a, b in uv]
        lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in f + 1]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in f + 1]
    write_atomic(path, "\n".join(lines) + "\n")


_URDF = """<?xml version="1.0"?>
<robot name="{name}">
  <link name="base">
    <contact><lateral_friction value="0.5"/><rolling_friction value="0.0"/></contact>
    <inertial><origin rpy="0 0 0" xyz="0 0 0"/><mass value="1.0"/>
      <inertia ixx="{ix:.6f}" ixy="0" ixz="0" iyy="{iy:.6f}" iyz="0" izz="{iz:.6f}"/></inertial>
    <visual><origin rpy="0 0 0" xyz="0 0 0"/><geometry><mesh filename="{obj}" scale="1 1 1"/></geometry></visual>
    <collision><origin rpy="0 0 0" xyz="0 0 0"/><geometry><mesh filename="{obj}" scale="1 1 1"/></geometry></collision>
  </link>
</robot>
"""


def prepare_mesh(asset_id: str, cache_dir: Path | None = None) -> PreparedMesh:
    """Normalise a pybullet_data mesh into the cache (idempotent, safe across processes)."""
    import trimesh

    src = pybullet_mesh_path(asset_id)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = hashlib.sha1(f"{src}:{src.stat().st_size}:v1".encode()).hexdigest()[:10]
    out = cache_dir / f"{asset_id.replace('/', '_')}-{key}"
    obj_path, urdf_path, meta_path = out / "mesh.obj", out / "object.urdf", out / "extents.npy"
    if not (urdf_path.is_file() and meta_path.is_file()):
        out.mkdir(parents=True, exist_ok=True)
        mesh = trimesh.load(str(src), force="mesh", process=False)
        v = np.asarray(mesh.vertices, dtype=np.float64)
        f = np.asarray(mesh.faces, dtype=np.int64)
        uv = getattr(mesh.visual, "uv", None)
        uv = np.asarray(uv) if uv is not None and len(uv) == len(v) else None
        lo, hi = v.min(0), v.max(0)
        v = (v - (lo + hi) / 2) / float((hi - lo).max())
        _write_obj(obj_path, v, f, uv)
        ext = v.max(0) - v.min(0)
        # Inertia of the bounding box at mass 1 (PyBullet rescales with mass/globalScaling).
        ix, iy, iz = [(ext[(i + 1) % 3] ** 2 + ext[(i + 2) % 3] ** 2) / 12 for i in range(3)]
        write_atomic(urdf_path, _URDF.format(name=asset_id.replace("/", "_"), obj="mesh.obj",
                                             ix=ix, iy=iy, iz=iz))
        with atomic_file(meta_path) as fh:
            np.save(fh, np.array([*ext, float(uv is not None)]))
    meta = np.load(meta_path)
    return PreparedMesh(asset_id, str(obj_path), str(urdf_path), tuple(float(x) for x in meta[:3]),
                        bool(meta[3]))


def fetch_url(url: str, dst: Path) -> Path:
    """Download `url` to `dst` once (tracker.common.download: atomic, safe across processes, a stalled or cut-short
    transfer is a one-line DownloadError)."""
    from tracker.common.download import download

    dst = Path(dst)
    if not dst.is_file():
        download(url, dst, progress=False)
    return dst


def _is_url(path: str) -> bool:
    return path.split("://", 1)[0] in ("http", "https", "file") and "://" in path


def open_kubric_source(manifest: str, scratch_dir: Path):
    """`kb.AssetSource` for a manifest given by local path, gs:// path or http(s)/file URL.

    Kubric reads through tf.io.gfile, which has no http(s): for URLs the manifest and each asset's
    .tar.gz are downloaded with urllib into `scratch_dir` first, then Kubric unpacks them as usual.
    """
    import json
    import tarfile

    import kubric as kb

    scratch_dir = Path(scratch_dir)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    if not _is_url(manifest):
        return kb.AssetSource.from_manifest(manifest, scratch_dir=scratch_dir)
    key = hashlib.sha1(manifest.encode()).hexdigest()[:10]
    local = fetch_url(manifest, scratch_dir / f"manifest-{key}.json")
    spec = json.loads(local.read_text())
    base = spec.get("data_dir") or manifest.rsplit("/", 1)[0]

    class _UrlAssetSource(kb.AssetSource):
        def fetch(self, asset_path, asset_id):
            target = self.local_dir / asset_id
            if not target.is_dir():
                entry = self._assets[asset_id].get("path", "") or f"{asset_id}.tar.gz"
                tgz = fetch_url(f"{base}/{entry}", self.local_dir / f"{asset_id}.tar.gz")
                with tarfile.open(tgz, "r:gz") as tar:  # same two layouts Kubric accepts
                    names = tar.getnames()
                    flat = not (asset_id in names and tar.getmember(asset_id).isdir())
                    tar.extractall(target if flat else self.local_dir)
            return target

    return _UrlAssetSource(name=spec.get("name", f"manifest-{key}"), data_dir=scratch_dir,
                           assets=spec["assets"], scratch_dir=scratch_dir)


class KubricSources:
    """Optional Kubric manifests (GSO, ShapeNet, HDRI haven...) from local paths or URLs.

    Opened lazily (needs Kubric): ``source(i)`` is a ``kb.AssetSource``; ``source(i).create(asset_id)``
    makes the Kubric asset.
    """

    def __init__(self, configs, workdir: Path):
        self.configs = list(configs)
        self.workdir = Path(workdir)
        self._sources: dict[int, object] = {}

    def source(self, i: int):
        if i not in self._sources:
            cfg = self.configs[i]
            scratch = Path(cfg.scratch_dir) if cfg.scratch_dir else self.workdir / "assets"
            self._sources[i] = open_kubric_source(cfg.manifest, scratch)
        return self._sources[i]

    def indices(self, category: str) -> list[int]:
        return [i for i, c in enumerate(self.configs) if c.category == category]

    def asset_ids(self, i: int) -> list[str]:
        return sorted(self.source(i).all_asset_ids)


def dome_mesh(cache_dir: Path | None = None, n_lat: int = 16, n_lon: int = 48) -> str:
    """A unit-radius hemisphere (z >= -0.05, open at the bottom) with lat-long UVs, as a cached OBJ.

    Scaled by the dome radius it encloses the scene, so every camera ray hits textured geometry
    (no world-background pixels: every pixel has a depth and a segment).
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache_dir / f"dome_{n_lat}x{n_lon}.obj"
    if path.is_file():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    elev = np.linspace(-0.05, np.pi / 2, n_lat + 1)  # slightly below the floor: no gap at the horizon
    azim = np.linspace(0, 2 * np.pi, n_lon + 1)  # seam duplicated so UVs wrap cleanly
    e, a = np.meshgrid(elev, azim, indexing="ij")
    v = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)
    uv = np.stack([a / (2 * np.pi), e / (np.pi / 2)], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    p00 = (i * (n_lon + 1) + j).ravel()
    p01, p10 = p00 + 1, p00 + n_lon + 1
    p11 = p10 + 1
    f = np.concatenate([np.stack([p00, p01, p11], 1), np.stack([p00, p11, p10], 1)])
    _write_obj(path, v, f, uv)
    return str(path)
