"""Make kubric-nightly 2023.12.27 (written for Blender 2.9x/3.x) work with the `bpy` 4.2 wheel.

Call :func:`apply` once before building a Kubric scene; it is idempotent and cheap after the first
call. It imports ``bpy`` and ``kubric`` (heavy: TensorFlow comes with Kubric), so import this module
lazily: nothing else in ``datagen`` that must work without Blender imports it at module level.

Each patch below replaces one Kubric function/dispatch entry and says why. Patches touch only Kubric
objects (never Blender itself), so they are safe to apply in a fresh Blender session:

1. ``PrincipledBSDFMaterial`` -> Blender material (``_add_principled_bsdf``): Blender 4.0 renamed the
   Principled BSDF sockets ("Specular" -> "Specular IOR Level", "Transmission" -> "Transmission
   Weight", "Emission" -> "Emission Color"), removed "Transmission Roughness" and turned
   "Specular Tint" from a float into a colour; "Emission Strength" now defaults to 0, so it is set
   to 1 to keep Kubric's 3.x meaning ("emission" colour = emitted radiance).
2. ``FileBasedObject`` -> Blender mesh (``_add_file_based_object``): ``bpy.ops.import_scene.obj``
   (Python add-on) is gone since 4.0; the C++ importer ``bpy.ops.wm.obj_import`` takes
   ``forward_axis``/``up_axis`` instead of ``axis_forward``/``axis_up`` (legacy keyword names in
   ``render_import_kwargs`` are translated) and applies the axis change as an object rotation instead
   of baking it into the vertices; Kubric then overwrites that rotation, so it is baked here.
   ``Mesh.use_auto_smooth`` was removed in 4.1 (Kubric set it to False; flat/smooth shading now comes
   from the file). The glTF branch passed a context
   dict to ``bpy.ops.object.delete`` (positional context overrides were removed in 4.0) ->
   ``context.temp_override``.
3. ``Blender.__init__`` (``_blender_init``): Cycles only writes the "Vector" (optical flow) pass when
   render motion blur is OFF, so ``scene.render.use_motion_blur`` is forced False (motion blur is
   done in the compositor by Kubric's ``motion_blur`` vector-blur node, which still exists in 4.2).
   The compositor's legacy ``CompositorNodeSepRGBA/CombRGBA`` nodes Kubric uses still exist in 4.2.
4. ``blender_utils.add_coordinate_material`` (``_add_coordinate_material``): the AOV Output node
   writes to the view-layer AOV named by its ``aov_name`` property in 4.x (Kubric only set the node
   name), so Kubric's "object_coordinates" layer came out all zeros.
5. ``Blender.postprocess`` (``_postprocess``): not a 4.2 fix but the cost of reading a render back. Kubric
   decodes every EXR layer of every frame (image, flow, normals, UV, object coordinates, cryptomatte) and the
   PNG with the pure-Python ``png`` module, whatever the caller asked for: 3.5 s of a 128x128, 12-frame scene's
   10.5 s (datagen renders twice: the colour pass needs only the PNG, the ground-truth pass only depth,
   segmentation and flow). This reads only the EXR channels the asked layers need and decodes the PNG (8-bit
   RGBA, lossless) with Pillow; the arrays are identical (tests/datagen/test_compat.py), other bit depths and
   unknown layers go through Kubric's own readers.
"""
from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout

_APPLIED = False

# legacy import_scene.obj keyword -> wm.obj_import keyword; axis values "-Z" -> "NEGATIVE_Z".
_OBJ_KWARG_RENAMES = {"axis_forward": "forward_axis", "axis_up": "up_axis"}


def _axis_value(v: str) -> str:
    v = v.upper()
    return "NEGATIVE_" + v[1:] if v.startswith("-") else v


def translate_obj_import_kwargs(kwargs: dict) -> dict:
    """Map Kubric/legacy ``import_scene.obj`` kwargs onto ``wm.obj_import`` kwargs."""
    out = {}
    for k, v in kwargs.items():
        k2 = _OBJ_KWARG_RENAMES.get(k, k)
        out[k2] = _axis_value(v) if k2 in ("forward_axis", "up_axis") else v
    out.setdefault("use_split_objects", False)
    out.setdefault("use_split_groups", False)
    return out


def apply() -> None:
    """Patch Kubric in place for Blender 4.2 (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    from kubric import core
    from kubric.renderer import blender as kb_blender
    from kubric.renderer import blender_utils
    from kubric.redirect_io import RedirectStream
    from kubric.safeimport.bpy import bpy

    AttributeSetter = kb_blender.AttributeSetter
    KeyframeSetter = kb_blender.KeyframeSetter
    dispatch = kb_blender.Blender.__dict__["add_asset"]  # the singledispatchmethod descriptor

    # ---- 1. Principled BSDF sockets renamed in 4.0 --------------------------------------------
    @blender_utils.prepare_blender_object
    def _add_principled_bsdf(self, obj: core.PrincipledBSDFMaterial):
        mat = bpy.data.materials.new(obj.uid)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]

        def bind(trait: str, socket, converter=None):
            obj.observe(AttributeSetter(socket, "default_value", converter=converter), trait)
            obj.observe(KeyframeSetter(socket, "default_value"), trait, type="keyframe")

        bind("color", bsdf.inputs["Base Color"])
        bind("roughness", bsdf.inputs["Roughness"])
        bind("metallic", bsdf.inputs["Metallic"])
        bind("specular", bsdf.inputs["Specular IOR Level"])  # 0.5 = neutral in both versions
        bind("ior", bsdf.inputs["IOR"])
        bind("transmission", bsdf.inputs["Transmission Weight"])
        # 3.x "Specular Tint" (float) blended white towards the base colour; 4.x takes the colour.
        base = bsdf.inputs["Base Color"]

        def tint(t: float):
            c = base.default_value
            return tuple((1.0 - t) + t * c[i] for i in range(3)) + (1.0,)

        bind("specular_tint", bsdf.inputs["Specular Tint"], converter=tint)
        bind("emission", bsdf.inputs["Emission Color"])
        bsdf.inputs["Emission Strength"].default_value = 1.0  # 4.x default is 0 (= no emission)
        return mat

    dispatch.register(core.PrincipledBSDFMaterial, _add_principled_bsdf)

    # ---- 2. OBJ importer / auto-smooth / context overrides -------------------------------------
    @blender_utils.prepare_blender_object
    def _add_file_based_object(self, obj: core.FileBasedObject):
        if obj.render_filename is None:
            return None
        extension = obj.render_filename.rpartition(".")[2].lower()
        kwargs = dict(obj.render_import_kwargs)
        with RedirectStream(stream=sys.stdout, disabled=self.verbose), io.StringIO() as buf, \
                redirect_stdout(buf):
            if extension == "obj":
                bpy.ops.wm.obj_import(filepath=obj.render_filename,
                                      **translate_obj_import_kwargs(kwargs))
                # The 4.x importer puts the axis conversion into the object's rotation; the 3.x one
                # baked it into the vertices. Kubric overwrites the rotation (quaternion mode), so
                # bake it like 3.x did, else meshes would be turned against their PyBullet twin.
                imported = bpy.context.selected_objects
                if imported:
                    bpy.context.view_layer.objects.active = imported[0]
                    bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
            elif extension in ("glb", "gltf"):
                bpy.ops.import_scene.gltf(filepath=obj.render_filename, **kwargs)
                extra = [o for o in bpy.context.selected_objects if o.type != "MESH"]
                if extra:
                    with bpy.context.temp_override(selected_objects=extra):
                        bpy.ops.object.delete()
                meshes = [o for o in bpy.context.scene.objects if o.select_get()]
                bpy.context.view_layer.objects.active = meshes[0]
                if len(meshes) > 1:
                    bpy.ops.object.join()
                b_obj = bpy.context.selected_objects[0]
                # glTF is Y-up: rotate like Kubric did so PyBullet and Blender agree.
                b_obj.rotation_mode = "QUATERNION"
                b_obj.rotation_quaternion = (0.707107, -0.707107, 0, 0)
                bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
            elif extension == "fbx":
                bpy.ops.import_scene.fbx(filepath=obj.render_filename, **kwargs)
            elif extension == "blend":
                bpy.ops.wm.append(**kwargs)
            else:
                raise ValueError(f"Unknown file-type: '{extension}' for {obj}")
        selected = bpy.context.selected_objects
        if len(selected) != 1:
            raise RuntimeError(f"importing {obj.render_filename} gave {len(selected)} objects, not 1")
        b_obj = selected[0]
        kb_blender.register_object3d_setters(obj, b_obj)
        obj.observe(AttributeSetter(b_obj, "active_material",
                                    converter=self._convert_to_blender_object), "material")
        obj.observe(AttributeSetter(b_obj, "scale"), "scale")
        obj.observe(KeyframeSetter(b_obj, "scale"), "scale", type="keyframe")
        return b_obj

    dispatch.register(core.FileBasedObject, _add_file_based_object)

    # ---- 3. Keep Cycles' vector (flow) pass alive ------------------------------------------------
    original_init = kb_blender.Blender.__init__

    def _blender_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.blender_scene.render.use_motion_blur = False

    _blender_init.__wrapped__ = original_init
    kb_blender.Blender.__init__ = _blender_init

    # ---- 4. Object-coordinates AOV -----------------------------------------------------------
    original_coordinate_material = blender_utils.add_coordinate_material

    def _add_coordinate_material():
        mat = original_coordinate_material()
        aov = mat.node_tree.nodes["ObjectCoordinates"]
        aov.aov_name = "ObjectCoordinates"  # 4.x routes by `aov_name`, not by the node's name
        return mat

    blender_utils.add_coordinate_material = _add_coordinate_material

    # ---- 5. Decode only what is asked for ---------------------------------------------------------
    original_postprocess = kb_blender.Blender.postprocess

    def _postprocess(self, from_dir, return_layers):
        return read_back(self, from_dir, return_layers)

    _postprocess.__wrapped__ = original_postprocess
    kb_blender.Blender.postprocess = _postprocess

    _APPLIED = True


# the EXR channels each returned layer is computed from (Kubric's post-processors); None: all of them
_LAYER_CHANNELS = {"rgba": (), "rgb": (), "z": ("depth",), "depth": ("depth",), "forward_flow": ("flow",),
                   "backward_flow": ("flow",), "segmentation": ("segmentation",), "normal": ("normal",),
                   "uv": ("uv",), "object_coordinates": ("object_coordinates",)}


def _exr_layers(path, wanted: set) -> dict:
    """The source layers ``wanted`` of one EXR, as Kubric's ``get_render_layers_from_exr`` builds them."""
    import numpy as np
    import OpenEXR
    from kubric.renderer.blender_utils import read_channels_from_exr

    exr = OpenEXR.InputFile(str(path))
    out = {}
    if "depth" in wanted:
        out["depth"] = read_channels_from_exr(exr, ["Depth.V"])
    if "flow" in wanted:
        # Blender: (-d_col, d_row) backward in R, G and forward in B, A; Kubric: (d_row, d_col)
        flow = read_channels_from_exr(exr, ["Vector.R", "Vector.G", "Vector.B", "Vector.A"])
        out["backward_flow"] = np.stack([flow[..., 1], -flow[..., 0]], -1)
        out["forward_flow"] = np.stack([flow[..., 3], -flow[..., 2]], -1)
    if "segmentation" in wanted:
        # the first cryptomatte rank's object hash (the only one Kubric's segmentation reads)
        out["segmentation_indices"] = read_channels_from_exr(exr, ["CryptoObject00.R"]).view(np.uint32)
    if "normal" in wanted:
        out["normal"] = read_channels_from_exr(exr, ["Normal.X", "Normal.Y", "Normal.Z"])
    if "uv" in wanted:
        out["uv"] = read_channels_from_exr(exr, ["UV.X", "UV.Y", "UV.Z"])
    if "object_coordinates" in wanted:
        out["object_coordinates"] = read_channels_from_exr(
            exr, ["ObjectCoordinates.R", "ObjectCoordinates.G", "ObjectCoordinates.B"])
    return out


def read_png(path):
    """(H, W, planes) array of a PNG as Kubric's ``file_io.read_png`` returns it; 8-bit files through Pillow."""
    import numpy as np
    from kubric import file_io
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGBA", "RGB", "L", "LA"):
            a = np.asarray(im)
            return a if a.ndim == 3 else a[..., None]
    return file_io.read_png(path)


def read_back(renderer, from_dir, return_layers) -> dict:
    """What ``Blender.postprocess(from_dir, return_layers)`` returns, decoding only what those layers need."""
    from pathlib import Path

    import numpy as np
    from kubric.renderer import blender_utils

    from_dir = Path(from_dir)
    wanted, every = set(), False
    for key in return_layers:
        if key not in _LAYER_CHANNELS:
            every = True
        else:
            wanted.update(_LAYER_CHANNELS[key])
    needs_png = every or any(k in ("rgba", "rgb") for k in return_layers)
    stacks: dict[str, list] = {k: [] for k in return_layers}
    for exr in sorted((from_dir / "exr").glob("*.exr")):
        if every:
            layers = blender_utils.get_render_layers_from_exr(exr)
        else:
            layers = _exr_layers(exr, wanted) if wanted else {}
        if needs_png:
            layers["rgba"] = read_png(from_dir / "images" / (exr.stem + ".png"))
        for key in return_layers:
            stacks[key].append(renderer.post_processors[key](layers, renderer.scene))
    return {key: np.stack(v, axis=0) for key, v in stacks.items() if v}


def is_applied() -> bool:
    """True once :func:`apply` has patched Kubric in this process."""
    return _APPLIED
