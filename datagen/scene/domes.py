"""Domes a camera could have seen (bpy): a sky above a skyline of buildings, trees or a wall.

The dome kinds "procedural" and "image" cover the whole hemisphere with a test pattern (random colours through a
noise or checker, pybullet_data's UV grids and number charts). A "realistic" dome is a sky (clear, cloudy or
overcast: a gradient from the horizon to the zenith, clouds from a stretched noise) above a skyline drawn around
the horizon: city blocks of random width and height with rows of windows, a line of trees, or a wall of bricks,
plaster or concrete panels. All procedural, from Blender's texture nodes: no asset file, no licence.

The sky glows (an emission: a real sky is brightest near the sun, which a lit dome would shade the other way); the
skyline is a Principled surface lit by the scene's sun and ambient light. Neither lights the scene (the dome is
invisible to diffuse and shadow rays, datagen.scene.build). Coordinates: the dome mesh is a unit hemisphere with
lat-long UVs (datagen.scene.assets.dome_mesh) scaled by the dome radius, so object z times the radius is the height
in metres and u times the circumference the arc length; window rows and bricks repeat a whole number of times
around the dome, so they meet at its seam.
"""
from __future__ import annotations

import colorsys

import numpy as np

from datagen.actors.node_graph import NodeGraph

SKYLINES = ("city", "trees", "wall")
SKIES = ("clear", "cloudy", "overcast")


def _rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))


def _shade(rgb, value: float) -> tuple[float, float, float]:
    return tuple(float(np.clip(c * value, 0.0, 1.0)) for c in rgb)


def dome_material(bpy, name: str, rng, radius: float, skyline: str | None = None, sky: str | None = None):
    """(material, facts): the dome's material and {"skyline": ..., "sky": ...}, drawn from `rng` unless given.
    `radius`: the dome's radius in metres (the mesh is a unit hemisphere scaled by it)."""
    skyline = SKYLINES[rng.randint(len(SKYLINES))] if skyline is None else skyline
    sky = SKIES[rng.randint(len(SKIES))] if sky is None else sky
    g = NodeGraph(bpy, name)
    coords = g.node("ShaderNodeTexCoord")
    xyz = g.node("ShaderNodeSeparateXYZ")
    g.link(coords.outputs["Object"], xyz.inputs["Vector"])
    uv = g.node("ShaderNodeSeparateXYZ")
    g.link(coords.outputs["UV"], uv.inputs["Vector"])
    height = g.math("MULTIPLY", xyz.outputs["Z"], radius)  # metres above the floor
    arc = g.math("MULTIPLY", uv.outputs["X"], 2 * np.pi * radius)  # metres along the horizon
    facade = g.node("ShaderNodeCombineXYZ")  # (arc, height, 0): the skyline's own plane
    g.link(arc, facade.inputs["X"])
    g.link(height, facade.inputs["Y"])
    flat = g.node("ShaderNodeCombineXYZ")
    g.link(xyz.outputs["X"], flat.inputs["X"])
    g.link(xyz.outputs["Y"], flat.inputs["Y"])
    # the azimuth as a point on the unit circle, the same at every height (upright edges), with no seam
    around = g.node("ShaderNodeVectorMath")
    around.operation = "NORMALIZE"
    g.link(flat.outputs["Vector"], around.inputs[0])
    # (x, y on the horizon circle, height) in metres: seamless, for noises (the facade plane jumps at the UV seam)
    ring = g.node("ShaderNodeMapping", vector=around.outputs["Vector"], Scale=(radius, radius, 0.0))
    surface = g.node("ShaderNodeVectorMath")
    surface.operation = "ADD"
    g.link(ring.outputs["Vector"], surface.inputs[0])
    up = g.node("ShaderNodeCombineXYZ")
    g.link(height, up.inputs["Z"])
    g.link(up.outputs["Vector"], surface.inputs[1])
    ctx = _Dome(g, rng, radius, height, facade.outputs["Vector"], surface.outputs["Vector"],
                around.outputs["Vector"], coords.outputs["Object"])
    top, color, roughness = _SKYLINES[skyline](ctx)
    below = g.math("LESS_THAN", height, top)  # 1 on the skyline, 0 in the sky
    g.finish(color, roughness, specular=0.3)
    glow = g.node("ShaderNodeEmission", Strength=float(rng.uniform(0.8, 1.6)))
    g.link(_sky(ctx, sky), glow.inputs["Color"])
    mix = g.node("ShaderNodeMixShader")
    g.link(below, mix.inputs["Fac"])
    g.link(glow.outputs["Emission"], mix.inputs[1])
    g.link(g.bsdf.outputs["BSDF"], mix.inputs[2])
    g.link(mix.outputs["Shader"], g.nodes["Material Output"].inputs["Surface"])
    # the sky is not a light source (diffuse rays never see the dome): no light-sampling cost for it
    g.mat.cycles.emission_sampling = "NONE"
    return g.mat, {"skyline": skyline, "sky": sky}


class _Dome:
    """What the skyline and sky builders share: the graph, the draws, the radius and the coordinate sockets: height
    (m above the floor), facade (arc length, height, 0) m for layouts that repeat a whole number of times around
    (`repeats`), surface (x, y, height) m with no seam for noises, around (the azimuth on the unit circle) and
    direction (the dome's own coordinates)."""

    def __init__(self, g, rng, radius, height, facade, surface, around, direction):
        self.g, self.rng, self.radius = g, rng, radius
        self.height, self.facade, self.surface = height, facade, surface
        self.around, self.direction = around, direction

    def around_scaled(self, metres: float):
        """The horizon circle scaled so that noise and cells have features about `metres` long on the dome."""
        return self.g.node("ShaderNodeMapping", vector=self.around,
                           Scale=(self.radius / metres,) * 3).outputs["Vector"]

    def repeats(self, metres: float) -> float:
        """A length near `metres` that fits a whole number of times around the horizon (the UV seam)."""
        circumference = 2 * np.pi * self.radius
        return circumference / max(1, round(circumference / metres))


def _city(d: _Dome):
    """Blocks of about 9-16 m along the horizon, each its own height (between 4-6 and 9-16 m), facade colour and
    window pattern."""
    g, rng = d.g, d.rng
    # 2-D cells in the horizon's plane: the circle crosses them in arcs, one block each
    blocks = g.node("ShaderNodeTexVoronoi", vector=d.around_scaled(rng.uniform(9, 16)), Scale=1.0, Randomness=1.0)
    blocks.voronoi_dimensions = "2D"
    per_block = g.node("ShaderNodeSeparateColor")
    g.link(blocks.outputs["Color"], per_block.inputs["Color"])
    lo, hi = rng.uniform(4, 6), rng.uniform(9, 16)
    top = g.math("ADD", g.math("MULTIPLY", per_block.outputs["Red"], hi - lo), lo)
    hue = rng.uniform(0.02, 0.12)
    facades, _ = g.ramp(per_block.outputs["Green"], [  # plaster, brick, concrete, dark stone, white paint
        (0.0, _rgb(hue, 0.3, 0.7)), (0.25, _rgb(0.02, 0.6, 0.35)), (0.5, _rgb(0.0, 0.0, 0.45)),
        (0.75, _rgb(hue + 0.5, 0.08, 0.2)), (1.0, _rgb(hue, 0.08, 0.85))])
    facades = g.mix(0.5, facades, g.ramp(per_block.outputs["Blue"], [(0.0, _rgb(hue, 0.3, 0.7)),
                                                                     (1.0, _rgb(hue + 0.3, 0.2, 0.4))])[0])
    storey = rng.uniform(2.8, 3.6)
    windows = g.node("ShaderNodeTexBrick", vector=d.facade, Scale=1.0, Mortar_Size=rng.uniform(0.45, 0.65),
                     Mortar_Smooth=0.0, Bias=0.0, Brick_Width=d.repeats(rng.uniform(2.2, 3.4)), Row_Height=storey,
                     Color1=(0.005, 0.006, 0.008, 1.0), Color2=(*_rgb(0.58, 0.25, 0.12), 1.0))
    windows.offset, windows.squash = 0.0, 1.0
    glass = g.math("MULTIPLY", g.math("SUBTRACT", 1.0, windows.outputs["Fac"]),
                   g.math("LESS_THAN", d.height, g.math("SUBTRACT", top, 0.6)))  # no window in the roof line
    color = g.mix(glass, facades, windows.outputs["Color"])
    grime = g.noise_at(d.surface, 0.5, 3.0)
    color = g.mix(g.math("MULTIPLY", grime, 0.5), color, _rgb(hue, 0.2, 0.3))
    roughness = g.math("ADD", g.math("MULTIPLY", glass, -0.75), 0.85)  # glass shines, walls do not
    return top, color, roughness


def _trees(d: _Dome):
    """A tree line 4-15 m high whose top rises and falls with the crowns, leaves in greens and browns."""
    g, rng = d.g, d.rng
    crowns = g.noise_at(d.around_scaled(rng.uniform(3, 6)), 1.0, 4.0, 0.6)
    lo, hi = rng.uniform(4, 6), rng.uniform(9, 15)
    top = g.math("ADD", g.math("MULTIPLY", g.smoothstep(crowns, 0.3, 0.7), hi - lo), lo)
    hue = rng.uniform(0.18, 0.33)
    base = _rgb(hue, rng.uniform(0.4, 0.8), rng.uniform(0.08, 0.25))
    leaves = g.noise_at(d.surface, rng.uniform(1.5, 3.0), 4.0, 0.7)
    color, _ = g.ramp(leaves, [(0.3, _shade(base, 0.4)), (0.5, base), (0.7, _shade(base, 1.8))])
    autumn = g.noise_at(d.surface, 1.0 / rng.uniform(8, 20), 2.0)
    color = g.mix(g.smoothstep(autumn, 0.6, 0.7), color, _rgb(rng.uniform(0.05, 0.12), 0.6, 0.25))
    return top, color, 0.9


def _wall(d: _Dome):
    """A wall 4-8 m high all around: bricks, plaster or concrete panels, weathered and darker at its foot. (Blender's
    brick texture draws its mortar size on each side of a joint: joints are twice as wide.)"""
    g, rng = d.g, d.rng
    top = float(rng.uniform(4, 8))
    kind = ("bricks", "plaster", "panels")[rng.randint(3)]
    if kind == "bricks":
        base = _rgb(rng.uniform(0.0, 0.07), rng.uniform(0.4, 0.7), rng.uniform(0.25, 0.5))
        size = (d.repeats(rng.uniform(0.22, 0.3)), rng.uniform(0.07, 0.085), 0.005)
        mortar = _rgb(0.1, 0.1, rng.uniform(0.5, 0.75))
    elif kind == "panels":
        base = _rgb(0.08, rng.uniform(0.0, 0.1), rng.uniform(0.35, 0.6))
        size = (d.repeats(rng.uniform(2.0, 4.0)), rng.uniform(1.0, 2.0), 0.015)
        mortar = _shade(base, 0.5)
    else:  # plaster: one colour, joints rare and faint
        base = _rgb(rng.uniform(0, 1), rng.uniform(0.05, 0.35), rng.uniform(0.45, 0.85))
        size = (d.repeats(rng.uniform(5.0, 9.0)), top + 1.0, 0.01)
        mortar = _shade(base, 0.8)
    layout = g.node("ShaderNodeTexBrick", vector=d.facade, Scale=1.0, Mortar_Size=size[2], Mortar_Smooth=0.1,
                    Bias=0.0, Brick_Width=size[0], Row_Height=size[1], Color1=(*_shade(base, 1.12), 1.0),
                    Color2=(*_shade(base, 0.88), 1.0), Mortar=(*mortar, 1.0))
    layout.offset = 0.5
    stains = g.noise_at(d.surface, rng.uniform(0.3, 1.0), 3.0, 0.6)
    color = g.mix(g.math("MULTIPLY", g.smoothstep(stains, 0.45, 0.75), 0.6), layout.outputs["Color"],
                  _shade(base, 0.5))
    foot = g.smoothstep(d.height, 1.2, 0.0)  # splashes and dirt near the ground
    color = g.mix(g.math("MULTIPLY", foot, 0.5), color, _shade(base, 0.45))
    return top, color, 0.9


def _sky(d: _Dome, sky: str):
    """The sky's colour (linear RGB socket) along the dome: horizon to zenith, with clouds."""
    g, rng = d.g, d.rng
    elevation = g.math("MULTIPLY", d.height, 1.0 / d.radius)  # sine of the elevation
    if sky == "overcast":
        grey = rng.uniform(0.55, 0.85)
        color, _ = g.ramp(elevation, [(0.0, (grey,) * 3), (1.0, (grey * 0.8,) * 3)])
        soft = g.noise_at(_stretched(d, 0.15), 1.0, 3.0, 0.5)
        return g.mix(g.math("MULTIPLY", soft, 0.6), color, (grey * 0.65,) * 3)
    hue = rng.uniform(0.55, 0.62)
    horizon = _rgb(hue, rng.uniform(0.1, 0.3), rng.uniform(0.75, 0.95))
    zenith = _rgb(hue, rng.uniform(0.45, 0.75), rng.uniform(0.45, 0.75))
    color, _ = g.ramp(elevation, [(0.0, horizon), (0.5, zenith)])
    if sky == "clear":
        return color
    cover = rng.uniform(0.45, 0.6)  # the noise's level above which a cloud shows: lower, more cloud
    clouds = g.noise_at(_stretched(d, rng.uniform(0.25, 0.5)), 1.0, 5.0, 0.55)
    white, _ = g.ramp(clouds, [(cover, (0.0,) * 3), (cover + 0.12, (1.0,) * 3)])
    thick = g.math("MULTIPLY", g.smoothstep(clouds, cover + 0.1, cover + 0.35), 0.7)  # greyer underneath
    cloud_color = g.mix(thick, (0.95, 0.95, 0.97), (0.5, 0.52, 0.57))
    return g.mix(g.gray(white), color, cloud_color)


def _stretched(d: _Dome, flat: float):
    """The dome's directions squashed vertically by `flat`: clouds lie in wide horizontal sheets."""
    return d.g.node("ShaderNodeMapping", vector=d.direction, Scale=(3.0, 3.0, 3.0 / flat)).outputs["Vector"]


_SKYLINES = {"city": _city, "trees": _trees, "wall": _wall}
