"""Objects a camera could have seen (bpy): painted, printed plastic, wooden, metal, ceramic and fabric surfaces.

The object kinds "procedural" and "image" give the tossed and static objects test patterns (two random colours
through a noise or checker; pybullet_data's UV grids and number charts). A "realistic" object is one of
OBJECT_SURFACES, built from Blender's texture nodes in the object's own coordinates (so the pattern moves with it):
a surface colour with the variation a real one has (mottle, grain, brushing, speckle), wear where objects wear
(scuffs, chips, smudges), and a roughness and bump that follow the material. All procedural: no asset, no licence.

Sizes are fractions of the object (its local coordinates are divided by its largest extent): a toy 10 cm across
and a crate 60 cm across get stripes, grain and chips in proportion, which is what the eye expects of small things
printed and worn at their scale.
"""
from __future__ import annotations

import colorsys

import numpy as np

from datagen.actors.node_graph import WAVE_PERIOD, NodeGraph
from datagen.colour import shade

OBJECT_SURFACES = ("painted", "printed", "wood", "metal", "ceramic", "fabric")

# (hue, saturation, value) ranges of each surface's base colour (linear RGB is made from it).
_PALETTES = {
    "painted": ((0.0, 1.0), (0.45, 0.9), (0.15, 0.7)),
    "printed": ((0.0, 1.0), (0.5, 0.95), (0.2, 0.8)),
    "wood": ((0.05, 0.10), (0.45, 0.75), (0.15, 0.55)),
    "metal": ((0.08, 0.14), (0.0, 0.45), (0.45, 0.9)),  # steel to brass and copper
    "ceramic": ((0.0, 1.0), (0.05, 0.5), (0.35, 0.9)),
    "fabric": ((0.0, 1.0), (0.3, 0.8), (0.1, 0.6)),
}


def object_material(bpy, name: str, rng, extent: float, kind: str | None = None):
    """(material, kind): a Principled material for an object whose local coordinates span `extent` units, one of
    OBJECT_SURFACES (drawn from `rng` unless `kind` is given) with colours and sizes drawn from `rng`."""
    kind = OBJECT_SURFACES[rng.randint(len(OBJECT_SURFACES))] if kind is None else kind
    g = NodeGraph(bpy, name)
    coords = g.node("ShaderNodeTexCoord").outputs["Object"]  # object space: the pattern moves with the object
    vec = g.node("ShaderNodeMapping", vector=coords, Scale=(1.0 / max(extent, 1e-6),) * 3,
                 Rotation=tuple(rng.uniform(0, 2 * np.pi, 3)), Location=tuple(rng.uniform(-10, 10, 3)))
    vec = vec.outputs["Vector"]
    base = colorsys.hsv_to_rgb(*(rng.uniform(*r) for r in _PALETTES[kind]))
    color, roughness, metallic, height = _BUILDERS[kind](g, vec, base, rng)
    g.bsdf.inputs["Metallic"].default_value = metallic
    if height is not None:
        g.bump(height, float(rng.uniform(0.2, 0.5)), distance=0.003)
    return g.finish(color, roughness), kind


def _wear(g, vec, color, base, scale: float, amount: float):
    """Scuffs: thin lighter streaks where the surface was rubbed, `amount` of the surface -> (colour, mask)."""
    scuff = g.node("ShaderNodeMapping", vector=vec, Scale=(1.0, 1.0, 6.0)).outputs["Vector"]  # long, thin
    mask = g.smoothstep(g.noise_at(scuff, scale, 3.0, 0.6), 0.68 - 0.1 * amount, 0.72 - 0.1 * amount)
    return g.mix(g.math("MULTIPLY", mask, 0.6), color, shade(base, 1.5, 0.5)), mask


def _painted(g, vec, base, rng):
    """A painted toy: two or three paints in large patches (a part in each colour), a faint mottle, scuffs, and
    chips that show a grey primer."""
    h, sat, v = colorsys.rgb_to_hsv(*base)
    paints = [base] + [colorsys.hsv_to_rgb((h + rng.uniform(0.15, 0.85)) % 1.0, rng.uniform(0.3, 0.9),
                                           rng.uniform(0.15, 0.9)) for _ in range(rng.randint(1, 3))]
    parts = g.node("ShaderNodeTexVoronoi", vector=vec, Scale=rng.uniform(1.5, 3.0), Randomness=1.0)
    color, ramp = g.ramp(g.gray(parts.outputs["Color"]), [((i + 0.5) / len(paints) - 0.5 / len(paints), shade(p))
                                                          for i, p in enumerate(paints)])
    ramp.color_ramp.interpolation = "CONSTANT"  # one paint per patch, sharp edges between them
    mottle = g.ramp(g.noise_at(vec, rng.uniform(3, 6), 2.0), [(0.3, (0.93,) * 3), (0.7, (1.07,) * 3)])[0]
    color = g.mix(1.0, color, mottle, blend="MULTIPLY")
    color, scuffs = _wear(g, vec, color, base, rng.uniform(4, 8), rng.uniform(0.0, 1.0))
    chips = g.smoothstep(g.noise_at(vec, rng.uniform(10, 20), 3.0, 0.65), 0.70, 0.72)
    primer = shade((0.5, 0.5, 0.5), float(rng.uniform(0.5, 1.4)))
    color = g.mix(chips, color, primer)
    rough = g.math("ADD", g.math("MULTIPLY", g.math("MAXIMUM", scuffs, chips), 0.4), float(rng.uniform(0.15, 0.4)))
    return color, rough, 0.0, g.math("SUBTRACT", 1.0, chips)


def _printed(g, vec, base, rng):
    """Plastic printed with stripes, dots or checks in two colours, slightly worn."""
    hue = colorsys.rgb_to_hsv(*base)[0]
    other = colorsys.hsv_to_rgb((hue + rng.choice([0.08, 0.33, 0.5, 0.67])) % 1.0, rng.uniform(0.0, 0.9),
                                rng.uniform(0.5, 0.95))
    pattern = rng.choice(["stripes", "dots", "checks"])
    repeats = rng.uniform(4, 14)
    if pattern == "stripes":
        wave = g.node("ShaderNodeTexWave", vector=vec, Scale=repeats * WAVE_PERIOD, Distortion=0.0)
        fac = g.smoothstep(wave.outputs["Fac"], 0.48, 0.52)
    elif pattern == "dots":
        cells = g.node("ShaderNodeTexVoronoi", vector=vec, Scale=repeats, Randomness=float(rng.uniform(0, 0.3)))
        fac = g.smoothstep(cells.outputs["Distance"], 0.25, 0.28)
    else:
        fac = g.node("ShaderNodeTexChecker", vector=vec, Scale=repeats, Color1=(1, 1, 1, 1),
                     Color2=(0, 0, 0, 1)).outputs["Fac"]
    color = g.mix(fac, shade(other), shade(base))
    color, scuffs = _wear(g, vec, color, base, rng.uniform(4, 8), rng.uniform(0.0, 0.6))
    rough = g.math("ADD", g.math("MULTIPLY", scuffs, 0.3), float(rng.uniform(0.2, 0.45)))
    return color, rough, 0.0, None


def _wood(g, vec, base, rng):
    """Wood: growth rings (a ring wave, wobbled) and grain streaks along the fibre."""
    rings = g.node("ShaderNodeTexWave", vector=vec, Scale=rng.uniform(4, 10) * WAVE_PERIOD,
                   Distortion=float(rng.uniform(2, 6)), Detail=2.0)
    rings.wave_type, rings.rings_direction = "RINGS", "Z"
    grain = g.noise_at(g.node("ShaderNodeMapping", vector=vec, Scale=(1.0, 1.0, 0.08)).outputs["Vector"],
                       rng.uniform(15, 30), 3.0, 0.55)
    color = g.ramp(rings.outputs["Fac"], [(0.2, shade(base, 0.5)), (0.8, shade(base, 1.35))])[0]
    color = g.mix(0.5, color, g.ramp(grain, [(0.3, shade(base, 0.6)), (0.7, shade(base, 1.3))])[0])
    return color, float(rng.uniform(0.4, 0.7)), 0.0, grain


def _metal(g, vec, base, rng):
    """Brushed metal: streaks along one axis in colour and roughness, smudges."""
    brushed = g.noise_at(g.node("ShaderNodeMapping", vector=vec, Scale=(1.0, 1.0, 0.02)).outputs["Vector"],
                         rng.uniform(40, 80), 2.0, 0.6)
    color = g.ramp(brushed, [(0.3, shade(base, 0.85)), (0.7, shade(base, 1.1))])[0]
    smudge = g.smoothstep(g.noise_at(vec, rng.uniform(2, 5), 3.0, 0.6), 0.55, 0.75)
    color = g.mix(g.math("MULTIPLY", smudge, 0.5), color, shade(base, 0.55))
    rough = g.math("ADD", g.math("MULTIPLY", brushed, 0.25),
                   g.math("ADD", g.math("MULTIPLY", smudge, 0.3), float(rng.uniform(0.1, 0.3))))
    return color, rough, 1.0, None


def _ceramic(g, vec, base, rng):
    """Glazed ceramic or stone-like plastic: a colour with dark and light speckles (spatterware, terrazzo)."""
    cells = g.node("ShaderNodeTexVoronoi", vector=vec, Scale=rng.uniform(8, 25), Randomness=1.0)
    speckle = g.gray(cells.outputs["Color"])
    dark = g.smoothstep(speckle, 0.8, 0.82)
    light = g.smoothstep(g.math("SUBTRACT", 1.0, speckle), 0.8, 0.82)
    color = g.ramp(g.noise_at(vec, rng.uniform(2, 5), 2.0), [(0.3, shade(base, 0.92)), (0.7, shade(base, 1.06))])[0]
    color = g.mix(light, g.mix(dark, color, shade(base, 0.35)), shade(base, 1.6, 0.4))
    return color, float(rng.uniform(0.1, 0.5)), 0.0, None


def _fabric(g, vec, base, rng):
    """Woven fabric (plush toys, bags): a melange yarn, a fine weave, mostly a tartan."""
    weave = g.node("ShaderNodeTexChecker", vector=vec, Scale=rng.uniform(30, 60)).outputs["Fac"]
    heather = g.noise_at(vec, rng.uniform(8, 16), 3.0, 0.65)  # melange: yarns dyed a little unevenly
    color = g.ramp(heather, [(0.3, shade(base, 0.75)), (0.7, shade(base, 1.2))])[0]
    if rng.uniform() < 0.8:  # tartan: two sets of bands across each other
        repeats = rng.uniform(3, 8)
        waves = [g.node("ShaderNodeTexWave", vector=vec, Scale=repeats * WAVE_PERIOD) for _ in range(2)]
        waves[0].bands_direction, waves[1].bands_direction = "X", "Y"
        bands = [g.smoothstep(w.outputs["Fac"], 0.6, 0.62) for w in waves]
        stripe = shade(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.1, 0.7)))
        color = g.mix(g.math("MULTIPLY", g.math("MAXIMUM", *bands), 0.8), color, stripe)
    color = g.mix(g.math("MULTIPLY", weave, 0.15), color, shade(base, 0.6))
    return color, 1.0, 0.0, weave


_BUILDERS = {"painted": _painted, "printed": _printed, "wood": _wood, "metal": _metal, "ceramic": _ceramic,
             "fabric": _fabric}
