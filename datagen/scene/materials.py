"""Scene materials (bpy): procedural or image textures in the object's own coordinates, so a texture sticks to
the surface as the object moves (what point tracking needs), and panoramas (HDRIs) on the dome and in the world."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROCEDURAL = ("noise", "voronoi", "checker", "wave", "magic", "brick")


def random_color(rng, sat=(0.3, 1.0), val=(0.3, 1.0)):
    import colorsys

    return (*colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)), 1.0)


def textured_material(bpy, name: str, rng, kind: str, images: list[str], scale: float):
    """A Principled material whose base colour comes from a random procedural or image texture.

    `scale`: texture repeats per unit of object-local coordinates; kind "procedural" or "image".
    """
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = rng.uniform(0.3, 1.0)
    bsdf.inputs["Metallic"].default_value = rng.choice([0.0, 0.0, 0.0, rng.uniform(0.3, 0.8)])
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (scale, scale, scale)
    mapping.inputs["Rotation"].default_value = tuple(rng.uniform(0, 2 * np.pi, 3))
    links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    if kind == "image" and images:
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = bpy.data.images.load(str(images[rng.randint(len(images))]), check_existing=True)
        tex.projection = "BOX"  # no UVs needed; seams blended
        tex.projection_blend = 0.2
        tex.extension = "REPEAT"
        links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat
    pattern = PROCEDURAL[rng.randint(len(PROCEDURAL))]
    tex = nodes.new({"noise": "ShaderNodeTexNoise", "voronoi": "ShaderNodeTexVoronoi",
                     "checker": "ShaderNodeTexChecker", "wave": "ShaderNodeTexWave",
                     "magic": "ShaderNodeTexMagic", "brick": "ShaderNodeTexBrick"}[pattern])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    if "Scale" in tex.inputs:  # node's own frequency multiplier (default 5); `scale` sets it alone
        tex.inputs["Scale"].default_value = 1.0
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = random_color(rng)
    ramp.color_ramp.elements[1].color = random_color(rng)
    fac = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs[0]
    links.new(fac, ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


@dataclass
class Panorama:
    """An equirectangular panorama (HDRI or LDR) lighting the scene: file, yaw (rad) and world strength."""
    path: str
    rotation: float
    strength: float


def panorama_material(bpy, name: str, pano: Panorama):
    """Emissive dome material showing the panorama exactly as the world shader does: the environment texture
    is looked up along the camera ray (-Incoming), not at the dome's UVs, so the backdrop has no parallax and
    agrees with the light the panorama casts (the dome itself is invisible to diffuse and shadow rays)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    # not a light source: the world shader lights the scene; estimating the emission of a view-dependent
    # textured dome for light sampling cost seconds per frame and would double its light
    mat.cycles.emission_sampling = "NONE"
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    for n in list(nodes):
        if n.type != "OUTPUT_MATERIAL":
            nodes.remove(n)
    geometry = nodes.new("ShaderNodeNewGeometry")
    flip = nodes.new("ShaderNodeVectorMath")
    flip.operation = "SCALE"
    flip.inputs["Scale"].default_value = -1.0
    links.new(geometry.outputs["Incoming"], flip.inputs[0])
    mapping = nodes.new("ShaderNodeMapping")
    mapping.vector_type = "VECTOR"
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, pano.rotation)
    links.new(flip.outputs["Vector"], mapping.inputs["Vector"])
    tex = nodes.new("ShaderNodeTexEnvironment")
    tex.image = bpy.data.images.load(pano.path, check_existing=True)
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = pano.strength
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
    return mat


def panorama_world(bpy, renderer, pano: Panorama, light_blur_deg: float = 0.0,
                   measure_cast: bool = False) -> np.ndarray | None:
    """Light the scene with the panorama: Kubric's world shader (Background for non-camera rays mixed with one
    for camera rays) gets the environment texture with the same yaw and strength on both; with `light_blur_deg`
    the non-camera rays see it blurred, its sun (if it has one) made a lamp (datagen.scene.world_light).
    Returns the panorama's colour cast (datagen.scene.white_balance.colour_cast) if `measure_cast`, else None."""
    from datagen.scene import white_balance, world_light

    image = bpy.data.images.load(pano.path, check_existing=True)
    px = world_light.read_linear(image) if light_blur_deg > 0 or measure_cast else None
    light = image
    if light_blur_deg > 0:
        light, sun = world_light.light_image(bpy, image, light_blur_deg, px=px)
        if sun is not None:
            world_light.add_sun(bpy, sun, pano.rotation, pano.strength)
    tree = bpy.context.scene.world.node_tree
    for tex, mapping, background, img in (
            (renderer.ambient_hdri_node, renderer.illum_mapping_node, renderer.ambient_node, light),
            (renderer.bg_hdri_node, renderer.bg_mapping_node, renderer.bg_node, image)):
        tex.image = img
        mapping.vector_type = "VECTOR"
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, pano.rotation)
        tree.links.new(tex.outputs["Color"], background.inputs["Color"])
        background.inputs["Strength"].default_value = pano.strength
    # The world's light-importance map: twice as wide as the image that lights (<= 2048). Coarser maps of a sharp
    # panorama miss small bright suns (Blender's city/interior/sunrise HDRIs: ~3e4 in a few pixels) and speckle
    # every lit surface with noise (seen at 256, 1024; clean at 2048 on a 1024-px HDRI); a blurred one (256 px,
    # its sun a lamp) needs no more than 512. It is built once per pass (render_scene keeps Cycles' data between
    # frames: without that the build cost seconds per frame).
    world = bpy.context.scene.world.cycles
    world.sampling_method = "MANUAL"
    world.sample_map_resolution = int(np.clip(2 * light.size[0], 256, 2048))
    return white_balance.colour_cast(px) if measure_cast else None


def set_material(renderer, asset, material) -> None:
    b_obj = asset.linked_objects[renderer]
    b_obj.data.materials.clear()
    b_obj.data.materials.append(material)
