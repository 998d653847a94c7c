"""What Blender rendered, read back for the annotator: segmentation ids of every surface (Kubric's assets, then the
actors' deforming meshes, matched through Cryptomatte hashes), per-frame poses, cameras and evaluated mesh vertices,
and the annotator's `SurfaceSet`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.scene import surfaces as surf


@dataclass
class Segments:
    """Segmentation ids: 0 = nothing, 1..N = scene.assets (Kubric), then every actor's deforming mesh.

    hashes: (S,) Cryptomatte object hash per id (0 for id 0); names: display names; category: (S,) index into
    category_names; meshes: (segment id, actor index, DeformingMesh) of the deforming ids.
    """
    names: list
    hashes: np.ndarray
    category: np.ndarray
    meshes: list

    def of_actors(self, num_actors: int) -> list[list[int]]:
        """Per actor (in build order), the segmentation ids of its meshes: every actor surface is a mesh."""
        ids: list[list[int]] = [[] for _ in range(num_actors)]
        for sid, k, _ in self.meshes:
            ids[k].append(sid)
        return ids


def segmentation_ids(scene, built) -> Segments:
    from kubric.renderer.blender_utils import mm3hash

    assets = list(scene.assets)
    names = ["none"] + [a.name for a in assets]
    hashes = [0] + [mm3hash(a.uid) for a in assets]  # Kubric names each Blender object after the asset uid
    category = [0] + [built.category.get(a, 0) for a in assets]
    meshes = []
    for k, actor in enumerate(built.actors):
        for mesh in actor.meshes:
            meshes.append((len(names), k, mesh))
            names.append(mesh.obj.name)
            hashes.append(mm3hash(mesh.obj.name))  # Cryptomatte hashes the Blender object name
            category.append(built.category_index(actor.category))
    hashes = np.array(hashes, dtype=np.uint32)
    if len(np.unique(hashes[1:])) != len(hashes) - 1:
        raise RuntimeError(f"two objects share a Cryptomatte hash (rename one): {names}")
    return Segments(names, hashes, np.array(category, np.int64), meshes)


def install_segmentation(renderer, segments: Segments) -> None:
    """Kubric's segmentation post-processor knows only its assets; this one maps every registered object's
    Cryptomatte hash to its id (anything else, e.g. nothing hit, stays 0)."""
    table = segments.hashes

    def process(exr_layers, scene):  # same signature as Kubric's post-processors
        raw = exr_layers["segmentation_indices"][:, :, :1]
        out = np.zeros(raw.shape, dtype=np.int64)
        for i in range(1, len(table)):  # loop over objects (few), pixels vectorised
            out[raw == table[i]] = i
        return out

    renderer.post_processors["segmentation"] = process


def read_back(bpy, renderer, scene, frames, cam_asset, segments: Segments):
    """Blender's own per-frame state of what was rendered.

    Returns poses (T, S, 4, 4) world matrices per segmentation id (identity for ids that are not Kubric
    objects), cameras (T, 4, 4) Blender camera-to-world, and per deforming id (its world vertices (T, V, 3)
    from the evaluated mesh, the triangulation (F, 3) and per-triangle polygon index (F,) of the first frame,
    the number of polygons).
    Raises if a deforming mesh changes its topology between frames.
    """
    assets = list(scene.assets)
    S = len(segments.names)
    poses = np.tile(np.eye(4), (len(frames), S, 1, 1))
    cams = np.zeros((len(frames), 4, 4))
    b_objs = [(i + 1, a.linked_objects.get(renderer)) for i, a in enumerate(assets)]
    b_objs = [(i, b) for i, b in b_objs if isinstance(b, bpy.types.Object)]
    b_cam = cam_asset.linked_objects[renderer]
    verts = {sid: [] for sid, _, _ in segments.meshes}
    topology = {}
    for k, f in enumerate(frames):  # loop over frames and objects only (few)
        bpy.context.scene.frame_set(f)
        for i, b in b_objs:
            poses[k, i] = np.array(b.matrix_world)
        cams[k] = np.array(b_cam.matrix_world)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        for sid, _, mesh in segments.meshes:
            ev = mesh.obj.evaluated_get(depsgraph)
            me = ev.to_mesh()
            co = np.empty(len(me.vertices) * 3, np.float32)
            me.vertices.foreach_get("co", co)
            m = np.array(ev.matrix_world)
            verts[sid].append(co.reshape(-1, 3).astype(np.float64) @ m[:3, :3].T + m[:3, 3])
            shape = (len(me.vertices), len(me.polygons))
            if sid not in topology:
                me.calc_loop_triangles()
                tris = np.empty(len(me.loop_triangles) * 3, np.int64)
                me.loop_triangles.foreach_get("vertices", tris)
                poly = np.empty(len(me.loop_triangles), np.int64)
                me.loop_triangles.foreach_get("polygon_index", poly)
                topology[sid] = (shape, tris.reshape(-1, 3), poly)
            elif topology[sid][0] != shape:
                raise RuntimeError(f"deforming mesh {mesh.obj.name} changes topology: {topology[sid][0]} "
                                   f"(vertices, polygons) at frame {frames[0]} but {shape} at frame {f}")
            ev.to_mesh_clear()
    meshes = {sid: (np.stack(verts[sid]), topology[sid][1], topology[sid][2], topology[sid][0][1])
              for sid in verts}
    return poses, cams, meshes


def surface_set(poses, segments: Segments, meshes: dict) -> surf.SurfaceSet:
    """The annotator's view: rigid poses per id, deforming meshes with their regions, global region names."""
    region_names = [surf.NONE_REGION]

    def region_id(name: str) -> int:
        if name not in region_names:
            region_names.append(name)
        return region_names.index(name)

    deforming = {}
    for sid, _, mesh in segments.meshes:
        vertices, faces, polygon, n_polygons = meshes[sid]
        if len(mesh.polygon_region) != n_polygons:
            raise RuntimeError(f"{mesh.obj.name}: {len(mesh.polygon_region)} region labels for its "
                               f"{n_polygons} polygons")
        local = np.array([region_id(n) for n in mesh.region_names], np.int64)
        deforming[sid] = surf.DeformingSurface(vertices, faces, local[mesh.polygon_region[polygon]])
    return surf.SurfaceSet(poses=poses, deforming=deforming, region_names=region_names)
