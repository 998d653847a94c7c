"""Floors a camera could have seen (bpy): wood planks, tiles, concrete, asphalt, lawn, carpet, paving stones.

The floor kinds "procedural" and "image" draw test patterns (two random colours through a noise or checker; the UV
grids, number charts and logos that ship with pybullet_data) that no real room or street has. A "realistic" floor
is one of FLOOR_SURFACES, built from Blender's own texture nodes: a layout (planks, tiles, stones) with per-element
shade variation, grain or grit inside it, joints, a roughness that follows the material and a bump at the joints,
in believable colours with a random hue, shade and size. All procedural: no asset file, no licence.

Coordinates are the shading point's world position in metres (the floor never moves, so the pattern sticks to it),
turned by a random yaw and shifted; the sizes below are in metres. The finest detail is a few centimetres, about a
pixel at the presets' camera distances: finer grain would only turn into sampling noise.
"""
from __future__ import annotations

import colorsys

import numpy as np

from datagen.actors.node_graph import NodeGraph
from datagen.colour import shade

FLOOR_SURFACES = ("wood", "tiles", "concrete", "asphalt", "lawn", "carpet", "paving")

# (hue, saturation, value) ranges of each surface's base colour (linear RGB is made from it); elements vary
# around the drawn colour.
_PALETTES = {
    "wood": ((0.05, 0.10), (0.4, 0.75), (0.15, 0.5)),
    "tiles": ((0.0, 1.0), (0.0, 0.25), (0.3, 0.85)),
    "concrete": ((0.06, 0.14), (0.02, 0.12), (0.25, 0.55)),
    "asphalt": ((0.0, 1.0), (0.0, 0.06), (0.06, 0.18)),
    "lawn": ((0.22, 0.32), (0.5, 0.85), (0.1, 0.3)),
    "carpet": ((0.0, 1.0), (0.15, 0.6), (0.12, 0.55)),
    "paving": ((0.04, 0.12), (0.05, 0.3), (0.25, 0.6)),
}
_DRY_GRASS = colorsys.hsv_to_rgb(0.12, 0.5, 0.4)


def floor_material(bpy, name: str, rng, kind: str | None = None):
    """(material, kind): a Principled material for the floor, one of FLOOR_SURFACES (drawn from `rng` unless
    `kind` is given) with colours and sizes drawn from `rng`."""
    kind = FLOOR_SURFACES[rng.randint(len(FLOOR_SURFACES))] if kind is None else kind
    g = NodeGraph(bpy, name, planar=True)  # the floor is a plane: 2-D noise and cells
    position = g.node("ShaderNodeNewGeometry").outputs["Position"]
    mapping = g.node("ShaderNodeMapping", vector=position, Rotation=(0.0, 0.0, rng.uniform(0, 2 * np.pi)),
                     Location=tuple(rng.uniform(-50, 50, 3)))
    base = colorsys.hsv_to_rgb(*(rng.uniform(*r) for r in _PALETTES[kind]))
    color, roughness, height = _BUILDERS[kind](g, mapping.outputs["Vector"], base, rng)
    strength = float(rng.uniform(0.3, 0.7))
    if height is not None:  # joints and seams; a bump evaluates its height three times, so only cheap heights
        g.bump(height, strength, distance=0.01)
    return g.finish(color, roughness), kind


def _bricks(g, vec, length: float, width: float, joint: float, offset: float, c1, c2, joint_color):
    """Blender's brick texture in metres (elements length x width; Blender draws the mortar size `joint` on both
    sides of a joint, so joints are 2 x `joint` wide) -> the node; its Color is c1 or c2 mixed per element at
    random, its Fac 1 in the joints."""
    node = g.node("ShaderNodeTexBrick", vector=vec, Scale=1.0, Mortar_Size=joint, Mortar_Smooth=0.2, Bias=0.0,
                  Brick_Width=length, Row_Height=width, Color1=c1, Color2=c2, Mortar=joint_color)
    node.offset, node.offset_frequency, node.squash, node.squash_frequency = offset, 1, 1.0, 1
    return node


def _noise(g, vec, scale: float, detail: float = 2.0, roughness: float = 0.5, stretch=None):
    """Noise texture with `scale` features per metre (stretched by `stretch` per axis: wood grain) -> Fac."""
    if stretch is not None:
        vec = g.node("ShaderNodeMapping", vector=vec, Scale=stretch).outputs["Vector"]
    return g.noise_at(vec, scale, detail, roughness)


def _wood(g, vec, base, rng):
    planks = _bricks(g, vec, rng.uniform(0.8, 2.0), rng.uniform(0.1, 0.25), 0.004, float(rng.uniform(0.25, 0.75)),
                     shade(base, 1.4), shade(base, 0.65), shade(base, 0.3))
    grain = _noise(g, vec, rng.uniform(3, 6), 3.0, 0.55, stretch=(0.08, 1.0, 1.0))  # streaks along the planks
    streaks = g.ramp(grain, [(0.3, shade(base, 0.6)), (0.5, shade(base)), (0.7, shade(base, 1.4, 0.9))])[0]
    color = g.mix(0.5, planks.outputs["Color"], streaks)
    color = g.mix(planks.outputs["Fac"], color, shade(base, 0.35))  # the seams stay dark
    return color, float(rng.uniform(0.3, 0.6)), planks.outputs["Fac"]


def _tiles(g, vec, base, rng):
    side = rng.uniform(0.2, 0.6)
    grout = shade(base, 0.55, 0.3) if rng.uniform() < 0.5 else shade(base, 1.4, 0.3)
    tiles = _bricks(g, vec, side * rng.choice([1.0, 1.0, 2.0]), side, rng.uniform(0.004, 0.01),
                    float(rng.choice([0.0, 0.5])), shade(base, 1.06), shade(base, 0.92), grout)
    mottle = g.ramp(_noise(g, vec, rng.uniform(4, 10), 2.0), [(0.3, shade(base, 0.9)), (0.7, shade(base, 1.1))])[0]
    color = g.mix(tiles.outputs["Fac"], g.mix(0.3, tiles.outputs["Color"], mottle), grout)
    rough = g.gray(g.ramp(tiles.outputs["Fac"], [(0.0, (0.15, 0.15, 0.15, 1.0)), (1.0, (0.9, 0.9, 0.9, 1.0))])[0])
    return color, rough, tiles.outputs["Fac"]


def _grit(g, vec, base, rng, scale: float, spread: float, speckle: float):
    """Concrete / asphalt: blotches at `scale` per metre (shade +- spread), larger stains and patches (a quarter
    of the surface, darker or lighter) and light grains (Voronoi cells) -> (colour, roughness, height)."""
    blotch = _noise(g, vec, scale, 3.0, 0.6)
    color = g.ramp(blotch, [(0.25, shade(base, 1.0 - spread)), (0.75, shade(base, 1.0 + spread))])[0]
    stains = g.gray(g.ramp(_noise(g, vec, rng.uniform(0.3, 0.8), 2.0), [(0.58, (0, 0, 0, 1)), (0.62, (1, 1, 1, 1))])[0])
    color = g.mix(stains, color, shade(base, float(rng.choice([0.6, 1.35]))))
    cells = g.node("ShaderNodeTexVoronoi", vector=vec, Scale=rng.uniform(25, 40), Randomness=1.0)
    grains = g.ramp(g.gray(cells.outputs["Color"]), [(0.0, (0, 0, 0, 1)), (0.8, (0, 0, 0, 1)), (0.82, (1, 1, 1, 1))])[0]
    color = g.mix(g.gray(g.mix(1.0 - speckle, grains, (0, 0, 0, 1))), color, shade(base, 1.8, 0.5))
    return color, float(rng.uniform(0.75, 0.95)), None  # grit: too fine for a bump at a few cm a pixel


def _concrete(g, vec, base, rng):
    """Grit on slabs of 1.5-4 m with dark joints."""
    color, rough, _ = _grit(g, vec, base, rng, rng.uniform(1.0, 3.0), 0.25, 0.4)
    side = rng.uniform(1.5, 4.0)
    slabs = _bricks(g, vec, side, side * rng.uniform(0.6, 1.0), 0.015, float(rng.choice([0.0, 0.5])),
                    (1, 1, 1, 1), (1, 1, 1, 1), (0, 0, 0, 1))
    color = g.mix(slabs.outputs["Fac"], color, shade(base, 0.4))
    return color, rough, slabs.outputs["Fac"]


def _asphalt(g, vec, base, rng):
    return _grit(g, vec, base, rng, rng.uniform(2.0, 5.0), 0.25, 0.8)


def _lawn(g, vec, base, rng):
    patches = _noise(g, vec, rng.uniform(0.5, 1.5), 2.0)
    blades = _noise(g, vec, rng.uniform(15, 30), 2.0, 0.7)
    dry = g.gray(g.ramp(patches, [(0.55, (0, 0, 0, 1)), (0.8, (0.6, 0.6, 0.6, 1))])[0])
    color = g.mix(dry, shade(base), shade(_DRY_GRASS))
    color = g.mix(0.6, color, g.ramp(blades, [(0.25, shade(base, 0.5)), (0.75, shade(base, 1.6))])[0])
    return color, 0.9, None


def _carpet(g, vec, base, rng):
    pile = _noise(g, vec, rng.uniform(20, 40), 2.0, 0.6)
    wear = _noise(g, vec, rng.uniform(0.5, 2.0), 2.0)
    color = g.ramp(pile, [(0.3, shade(base, 0.8)), (0.7, shade(base, 1.15))])[0]
    worn = g.gray(g.ramp(wear, [(0.55, (0, 0, 0, 1)), (0.8, (0.5, 0.5, 0.5, 1))])[0])
    color = g.mix(worn, color, shade(base, 1.3, 0.7))
    return color, 1.0, None


def _paving(g, vec, base, rng):
    size, randomness = rng.uniform(0.2, 0.45), rng.uniform(0.5, 1.0)
    edges = g.node("ShaderNodeTexVoronoi", vector=vec, Scale=1.0 / size, Randomness=randomness)
    edges.feature = "DISTANCE_TO_EDGE"
    cells = g.node("ShaderNodeTexVoronoi", vector=vec, Scale=1.0 / size, Randomness=randomness)
    per_stone = g.ramp(g.gray(cells.outputs["Color"]), [(0.2, shade(base, 0.8)), (0.8, shade(base, 1.2))])[0]
    grit = g.ramp(_noise(g, vec, rng.uniform(8, 15), 2.0), [(0.3, shade(base, 0.85)), (0.7, shade(base, 1.1))])[0]
    joint = g.gray(g.ramp(edges.outputs["Distance"], [(0.0, (1, 1, 1, 1)), (0.06, (0, 0, 0, 1))])[0])
    color = g.mix(joint, g.mix(0.3, per_stone, grit), shade(base, 0.45))
    height = g.gray(g.ramp(edges.outputs["Distance"], [(0.0, (0, 0, 0, 1)), (0.1, (1, 1, 1, 1))])[0])
    return color, float(rng.uniform(0.7, 0.9)), height


_BUILDERS = {"wood": _wood, "tiles": _tiles, "concrete": _concrete, "asphalt": _asphalt, "lawn": _lawn,
             "carpet": _carpet, "paving": _paving}
