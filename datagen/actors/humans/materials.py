"""Blender materials for anny people: skin tones, face details, hair and fabrics (all procedural).

Every texture is looked up in REST coordinates: the mesh carries a point attribute ``rest`` (the
vertex's position in the unposed body, metres) and the shaders read it with an Attribute node, so a
stripe or a freckle stays on the same spot of the surface however the body deforms (never world or
object coordinates, which would swim over a deforming mesh). Irises read the point attribute
``eye_r`` (distance from the eye's optical axis at rest, see ``regions.eye_coordinates``).

``Look`` holds the colours and pattern choices of one person (numpy only, JSON-able, drawn from a
seeded generator); ``build_materials(bpy, look, name, floor_z)`` makes one material per ``regions.SLOTS`` entry,
in that order (the mesh's polygon material indices point into it).

Colours are given in sRGB (as people pick them) and converted to Blender's linear values here.
Skin tones span 10 albedos from very light to very dark (the range of the Monk Skin Tone scale, at the
saturation real skin has) with small hue jitter; no subsurface scattering (its CPU cost is high and the
pixel-level texture, which is what the tracker needs, does not depend on it).
"""
from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from datagen.actors.node_graph import WAVE_PERIOD, NodeGraph
from datagen.colour import luminance, srgb_to_linear

# Skin albedos (sRGB), very light to very dark, 10 steps in the range of the Monk Skin Tone scale. Not its
# swatches: those are how skin looks on a screen, and as the albedo of a rendered surface the lightest four (HSV
# saturation 0.07-0.20, value 0.92-0.97) came out as white or grey plaster under HDRI light (seen on the face
# close-ups). Real skin reflects less blue than red at every tone: hue 19-26 degrees, saturation from 0.22 (very
# light) to about 0.5, value from 0.91 down to 0.23.
SKIN_TONES = ["#e8c8b4", "#e2bca0", "#daae8c", "#cc9d78", "#ba8964", "#a0714e", "#875b3e", "#6c4632",
              "#523527", "#3a271e"]
HAIR_COLORS = {"black": "#1c1a17", "dark_brown": "#3b2a1e", "brown": "#5a3d25", "light_brown": "#8b6a4a",
               "blond": "#c8a86b", "platinum": "#e0d2b0", "auburn": "#7a3420", "grey": "#9a9590",
               "white": "#d8d4cc"}
IRIS_COLORS = {"dark_brown": "#2b1a0e", "brown": "#4a2c17", "hazel": "#6b5a2e", "green": "#4f6b3a",
               "blue": "#4a6f98", "grey": "#7a8590"}
FABRIC_PATTERNS = ("solid", "stripes", "checks", "dots", "denim", "mottled", "knit", "plaid", "floral", "camo")
SKIN_ROUGHNESS, LIP_ROUGHNESS = 0.5, 0.35
REDDER = np.array([1.08, 0.85, 0.82])  # a skin's redder shade (blotches, blush): linear RGB factors
FABRIC_P = (0.24, 0.13, 0.1, 0.07, 0.12, 0.1, 0.09, 0.07, 0.05, 0.03)
# Scales of the hair's noises on the strand coordinates (hair.strand_coordinates: cos, sin of the azimuth about the
# crown, height in m): features per radian around the head (x 1 / 0.09 m at the hairline: per metre) and per metre
# along the strands.
HAIR_STREAKS = (63.0, 63.0, 40.0)  # strands ~1.5 mm apart at the hairline, streaks a few cm long
HAIR_LOCKS = (10.0, 10.0, 8.0)  # locks a centimetre or two wide
SCALP_STREAKS = (36.0, 36.0, 30.0)  # the scalp's painted hair (and the brows)
BROW_MAX_LUMINANCE = 0.05  # linear: a mid brown-grey (sRGB ~0.25)
BROW_COVER = (0.5, 0.9)  # how much of the skin the brow hairs hide, between their streaks and on them


def hex_rgb(h: str) -> tuple[float, float, float]:
    h = h.lstrip("#")
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


@dataclass(frozen=True)
class Fabric:
    """A fabric look: pattern name, two sRGB colours, pattern scale (repeats per metre), roughness."""

    pattern: str
    color: tuple[float, float, float]
    color2: tuple[float, float, float]
    scale: float
    roughness: float
    direction: int  # stripes: 0 horizontal bands, 1 vertical


@dataclass(frozen=True)
class Look:
    """Everything about how one person looks (sRGB colours)."""

    skin: tuple[float, float, float]
    skin_tone: float  # position on the Monk scale, 0 (lightest) .. 9 (darkest)
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_name: str
    iris: tuple[float, float, float]
    iris_name: str
    top: Fabric
    bottom: Fabric
    shoes: tuple[float, float, float]
    sole: tuple[float, float, float] = (0.9, 0.9, 0.88)  # the shoes' soles (sRGB)
    sole_height: float = 0.02  # metres of sole above the floor, at rest

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def sample(rng: np.random.Generator, age: float = 0.67, dress: bool = False) -> "Look":
        tone = float(rng.uniform(0, len(SKIN_TONES) - 1))
        lo = int(np.floor(tone))
        hi = min(lo + 1, len(SKIN_TONES) - 1)
        w = tone - lo
        skin = (1 - w) * np.array(hex_rgb(SKIN_TONES[lo])) + w * np.array(hex_rgb(SKIN_TONES[hi]))
        h, s, v = colorsys.rgb_to_hsv(*skin)
        skin = colorsys.hsv_to_rgb((h + rng.uniform(-0.015, 0.015)) % 1.0, np.clip(s * rng.uniform(0.85, 1.2), 0, 1),
                                   np.clip(v * rng.uniform(0.92, 1.05), 0, 1))
        # lips: redder than the skin, and a little darker on light skin (more saturated and darker than this, they
        # read as lipstick on the close-ups); on dark skin a darker red would vanish into it (seen on contact
        # sheets), so there they are as light as the skin or lighter, more mauve
        lh, ls, lv = colorsys.rgb_to_hsv(*skin)
        dark = lv < 0.45
        lips = colorsys.hsv_to_rgb(((0.97 if dark else 0.99) + rng.uniform(-0.02, 0.02)) % 1.0,
                                   np.clip(ls + (rng.uniform(0.15, 0.3) if dark else rng.uniform(0.08, 0.2)), 0, 1),
                                   np.clip(lv * (rng.uniform(1.0, 1.3) if dark else rng.uniform(0.72, 0.9)), 0, 1))
        names = list(HAIR_COLORS)
        p = np.array([3, 3, 3, 2, 1.5, 0.5, 1, 0.5, 0.3])
        if age > 0.85:  # older people: grey/white more likely
            p = p + np.array([0, 0, 0, 0, 0, 0, 0, 6, 4])
        hair_name = str(rng.choice(names, p=p / p.sum()))
        hair = tuple(np.clip(np.array(hex_rgb(HAIR_COLORS[hair_name])) * rng.uniform(0.85, 1.15), 0, 1))
        if rng.uniform() < 0.04:  # dyed
            hair_name = "dyed"
            hair = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.8))
        iris_name = str(rng.choice(list(IRIS_COLORS), p=[0.35, 0.25, 0.12, 0.08, 0.12, 0.08]))
        top = _sample_fabric(rng, allow_denim=False)
        bottom = top if dress else _sample_fabric(rng, allow_denim=True)
        shoes = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.6), rng.choice([rng.uniform(0.05, 0.2),
                                                                                   rng.uniform(0.3, 0.95)]))
        # soles: white, black, gum or the upper's colour darkened, 1.2-3.2 cm high
        sole = [(0.92, 0.92, 0.9), (0.08, 0.08, 0.08), (0.62, 0.42, 0.25),
                tuple(np.array(shoes) * 0.6)][int(rng.choice(4, p=[0.4, 0.3, 0.15, 0.15]))]
        return Look(skin=tuple(float(c) for c in skin), skin_tone=tone, lips=tuple(float(c) for c in lips),
                    hair=tuple(float(c) for c in hair), hair_name=hair_name,
                    iris=tuple(float(c) for c in hex_rgb(IRIS_COLORS[iris_name])), iris_name=iris_name,
                    top=top, bottom=bottom, shoes=tuple(float(c) for c in shoes),
                    sole=tuple(float(c) for c in sole), sole_height=float(rng.uniform(0.012, 0.032)))


def _sample_fabric(rng: np.random.Generator, allow_denim: bool) -> Fabric:
    p = np.array(FABRIC_P)
    if not allow_denim:
        p[FABRIC_PATTERNS.index("denim")] = 0
    pattern = str(rng.choice(FABRIC_PATTERNS, p=p / p.sum()))
    c1 = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.85), rng.uniform(0.08, 0.95))
    c2 = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 1.0))
    if pattern == "denim":
        c1 = colorsys.hsv_to_rgb(rng.uniform(0.58, 0.64), rng.uniform(0.4, 0.75), rng.uniform(0.2, 0.55))
        c2 = (0.85, 0.87, 0.9)
    scale = {"solid": 1.0, "stripes": rng.uniform(10, 40), "checks": rng.uniform(6, 20), "dots": rng.uniform(15, 40),
             "denim": 1.0, "mottled": rng.uniform(4, 12), "knit": rng.uniform(40, 80), "plaid": rng.uniform(4, 10),
             "floral": rng.uniform(8, 20), "camo": rng.uniform(3, 8)}[pattern]
    return Fabric(pattern=pattern, color=tuple(float(c) for c in c1), color2=tuple(float(c) for c in c2),
                  scale=float(scale), roughness=float(rng.uniform(0.55, 0.95)), direction=int(rng.integers(2)))


# ----------------------------------------------------------------------------------------------------------
# Blender node building


def _lin(rgb) -> tuple[float, float, float]:
    return tuple(float(c) for c in srgb_to_linear(rgb))


def _skin_tone(g: NodeGraph, look: Look):
    """The skin's colour socket with blotches (cm scale) and pores/freckles (mm scale): texture a tracker can lock
    onto, stuck to the skin -> (colour, the fine noise's socket)."""
    base = np.array(_lin(look.skin))
    darker = base * 0.8
    c = g.mix(g.noise(14.0, detail=3.0), tuple(darker), tuple(base * REDDER))
    c = g.mix(g.math("MULTIPLY", g.noise(14.0, detail=2.0), 0.9), tuple(base), c)
    fine = g.noise(120.0, detail=2.0)
    return g.mix(g.math("MULTIPLY", fine, 0.22), c, tuple(base * 0.7)), fine


def _skin(bpy, name: str, look: Look, blush: float = 0.0, lips: bool = False):
    """Skin; the face's (``lips``) also paints the lips up to their outline (the per-vertex ``lips`` distance of
    regions.BodyLabels: a smooth curve across the polygons it crosses)."""
    g = NodeGraph(bpy, name)
    c, fine = _skin_tone(g, look)
    if blush:
        c = g.mix(blush, c, tuple(np.array(_lin(look.skin)) * REDDER))
    roughness = SKIN_ROUGHNESS
    if lips:  # the lips' colour and sheen up to their outline
        on_lips = g.smoothstep(g.attribute("lips"), -0.5, 0.5)
        c = g.mix(on_lips, c, _lip_colour(g, look))
        roughness = g.math("ADD", g.math("MULTIPLY", on_lips, LIP_ROUGHNESS - SKIN_ROUGHNESS), SKIN_ROUGHNESS)
    # painted hair (regions.BodyLabels): brows from their density, the scalp's hair up to the hairline; both
    # interpolated per vertex across polygons, hence smooth edges, broken up by the strands' own texture
    # (one stretched noise for the strands: every skin sample evaluates these nodes, and the full strand texture
    # of _strands made the skin ~20 % dearer to render)
    streaks = g.noise_at(g.scaled(g.vector_attribute("strand"), SCALP_STREAKS), 1.0, detail=1.0)
    hair = np.array(_lin(look.hair))
    brows = brow_colour(look.hair)
    brow_c, _ = g.ramp(streaks, [(0.35, tuple(brows * 0.55)), (0.65, tuple(np.clip(brows * 1.35, 0, 1)))])
    brow = g.smoothstep(g.attribute("brow"), 0.15, 0.55)
    # brow hairs cover the skin only in part: the skin shows between them (fully covered, brows read as paint)
    c = g.mix(g.math("MULTIPLY", brow, g.math("ADD", g.math("MULTIPLY", streaks, BROW_COVER[1] - BROW_COVER[0]),
                                              BROW_COVER[0])), c, brow_c)
    hair_c, _ = g.ramp(streaks, [(0.35, tuple(hair * 0.55)), (0.65, tuple(np.clip(hair * 1.35 + 0.02, 0, 1)))])
    c = g.mix(g.smoothstep(g.attribute("hairline"), -0.03, 0.03), c, hair_c)
    lash_rgb = tuple(np.minimum(_lin(look.hair), 0.03) * 0.6)  # lashes are dark, whatever the hair colour
    c = g.mix(g.math("MULTIPLY", g.smoothstep(g.attribute("lash"), 0.3, 0.9), 0.9), c, lash_rgb)
    g.bump(fine, 0.05)
    return g.finish(c, roughness=roughness, specular=0.45)


def brow_colour(hair_srgb) -> np.ndarray:
    """The brows' linear RGB for a person with ``hair_srgb`` hair: the hair's colour darkened (x0.8), and for light
    hair (blond, platinum, grey, white) no brighter than BROW_MAX_LUMINANCE: real brows are darker than light
    scalp hair, and brows as bright as white hair read as two pale painted stripes on the close-ups."""
    hair = np.array(_lin(hair_srgb))
    return hair * min(0.8, BROW_MAX_LUMINANCE / max(luminance(hair), 1e-6))


def _lip_colour(g: NodeGraph, look: Look):
    """The lips' colour socket: ``look.lips`` with fine grain."""
    base = np.array(_lin(look.lips))
    return g.mix(g.noise(120.0, detail=2.0), tuple(base * 0.8), tuple(base * 1.1))


def _lips(bpy, name: str, look: Look):
    g = NodeGraph(bpy, name)
    return g.finish(_lip_colour(g, look), roughness=LIP_ROUGHNESS, specular=0.5)


def _strands(g: "NodeGraph", rgb):
    """Hair colour: fine streaks along the strands (a noise stretched along them: the ``strand`` coordinates,
    hair.strand_coordinates, so that they run from the crown over the forehead and down the sides and the back;
    irregular, unlike a wave's evenly spaced bands, which read as a knitted cap), locks a centimetre or two wide,
    some darker, and darker clumps. Returns (colour socket, the streaks' height for the bump)."""
    base = np.array(_lin(rgb))
    strand = g.vector_attribute("strand")
    streaks = g.noise_at(g.scaled(strand, HAIR_STREAKS), 1.0, detail=3.0, roughness=0.6)
    c = g.mix(g.smoothstep(streaks, 0.3, 0.7), tuple(base * 0.7), tuple(np.clip(base * 1.2 + 0.01, 0, 1)))
    locks = g.noise_at(g.scaled(strand, HAIR_LOCKS), 1.0, detail=1.0)
    c = g.mix(g.math("MULTIPLY", g.smoothstep(locks, 0.45, 0.7), 0.45), c, tuple(base * 0.5))
    clumps = g.noise(25.0, detail=2.0)
    return g.mix(g.math("MULTIPLY", clumps, 0.4), c, tuple(base * 0.6)), streaks


def _hair(bpy, name: str, rgb):
    g = NodeGraph(bpy, name)
    c, height = _strands(g, rgb)
    g.bump(height, 0.25)
    return g.finish(c, roughness=0.45, specular=0.6)


def _eye(bpy, name: str, look: Look):
    g = NodeGraph(bpy, name)
    r = g.nodes.new("ShaderNodeAttribute")
    r.attribute_type = "GEOMETRY"
    r.attribute_name = "eye_r"
    iris = np.array(_lin(look.iris))
    # radial fibres: noise along the angle makes the iris texture
    radial = g.math("MULTIPLY", r.outputs["Fac"], 1.0 / 0.0065)  # 0 at the pupil centre, 1 at the iris edge
    tex = g.noise(900.0, detail=2.0)
    iris_c = g.mix(tex, tuple(iris * 0.6), tuple(np.clip(iris * 1.5, 0, 1)))
    col, _ = g.ramp(radial, [(0.0, (0.01, 0.01, 0.01)), (0.36, (0.01, 0.01, 0.01)), (0.4, tuple(iris)),
                             (0.95, tuple(iris * 0.7)), (1.0, (0.8, 0.78, 0.75))])
    # the iris band (0.4-0.95) takes the textured colour
    band = g.math("MULTIPLY", g.math("GREATER_THAN", radial, 0.4), g.math("LESS_THAN", radial, 0.95))
    c = g.mix(band, col, iris_c)
    return g.finish(c, roughness=0.08, specular=0.6)


def _folds(g: NodeGraph, softness: float):
    """Fold height: soft ridges running around the limbs and the body (bands along z, strongly distorted) with a
    slow noise over them; 3-6 folds per 10 cm."""
    w = g.nodes.new("ShaderNodeTexWave")
    w.wave_type = "BANDS"
    w.bands_direction = "Z"
    w.inputs["Scale"].default_value = 1.0
    w.inputs["Distortion"].default_value = 8.0 + 6.0 * softness
    w.inputs["Detail"].default_value = 1.0
    w.inputs["Detail Scale"].default_value = 1.5
    g.link(g.scaled_rest((12.0 * WAVE_PERIOD, 12.0 * WAVE_PERIOD, (30.0 + 30.0 * softness) * WAVE_PERIOD)),
           w.inputs["Vector"])
    return g.math("MULTIPLY", w.outputs["Fac"], g.noise(4.0, detail=1.0))


def _bands(g: NodeGraph, axis: str, repeats: float, threshold: float):
    """1 on the bands (a `threshold` share of each period off), 0 between: stripes across `axis` (rest coords)."""
    w = g.nodes.new("ShaderNodeTexWave")
    w.wave_type = "BANDS"
    w.bands_direction = axis
    w.wave_profile = "SAW"
    w.inputs["Scale"].default_value = 1.0
    g.link(g.scaled_rest(repeats * WAVE_PERIOD), w.inputs["Vector"])
    return g.math("GREATER_THAN", w.outputs["Fac"], threshold)


def _plaid(g: NodeGraph, repeats: float, a, b):
    """Tartan: wide bands of `b` across both directions over `a` (darker where they cross, as woven threads mix),
    thin light lines at three times the frequency."""
    wide = g.math("ADD", _bands(g, "X", repeats, 0.6), _bands(g, "Z", repeats, 0.6))  # 0, 1 or 2
    c, ramp = g.ramp(g.math("MULTIPLY", wide, 0.5), [(0.0, tuple(a)), (0.5, tuple(b)), (1.0, tuple(b * 0.55))])
    ramp.color_ramp.interpolation = "CONSTANT"
    thin = g.math("MAXIMUM", _bands(g, "X", repeats * 3.0, 0.93), _bands(g, "Z", repeats * 3.0, 0.93))
    return g.mix(g.math("MULTIPLY", thin, 0.7), c, tuple(np.clip(a * 0.3 + 0.6, 0, 1)))


def _floral(g: NodeGraph, cells: float, a, b):
    """Scattered flowers: in about 3 of 4 Voronoi cells (`cells` per metre) a five-petal flower in `b` around the
    cell's point (petals from the angle around it, each flower turned at random) with a contrasting centre."""
    v = g.nodes.new("ShaderNodeTexVoronoi")
    v.inputs["Scale"].default_value = 1.0
    coords = g.scaled_rest(cells)
    g.link(coords, v.inputs["Vector"])
    rel = g.nodes.new("ShaderNodeVectorMath")
    rel.operation = "SUBTRACT"
    g.link(coords, rel.inputs[0])
    g.link(v.outputs["Position"], rel.inputs[1])
    xyz = g.nodes.new("ShaderNodeSeparateXYZ")
    g.link(rel.outputs["Vector"], xyz.inputs["Vector"])
    rnd = g.nodes.new("ShaderNodeSeparateColor")  # the cell's random colour: turn and presence of its flower
    g.link(v.outputs["Color"], rnd.inputs["Color"])
    # the angle around the cell's point, in the surface's plane on the front/back and (roughly) on the sides
    angle = g.math("ARCTAN2", xyz.outputs["Z"], g.math("ADD", xyz.outputs["X"], xyz.outputs["Y"]))
    lobes = g.math("COSINE", g.math("ADD", g.math("MULTIPLY", angle, 5.0), g.math("MULTIPLY", rnd.outputs["Red"],
                                                                                   6.283)))
    # petals reach 0.3-0.55 of a cell from its point: the cells are 3-D, so a surface cuts each flower off-centre
    # (flowers of varied sizes; a point far from the surface shows none)
    radius = g.math("ADD", g.math("MULTIPLY", lobes, 0.125), 0.425)
    petals = g.math("MULTIPLY", g.math("LESS_THAN", v.outputs["Distance"], radius),
                    g.math("GREATER_THAN", rnd.outputs["Green"], 0.25))
    c = g.mix(petals, tuple(a), tuple(b))
    centre = g.math("MULTIPLY", g.math("LESS_THAN", v.outputs["Distance"], 0.12), petals)
    return g.mix(centre, c, tuple(np.clip(1.0 - b * 0.8, 0.02, 1)))


def fabric_material(bpy, name: str, fabric: Fabric, neck_skin: Look | None = None):
    """A garment material of `fabric` (pattern in rest coordinates, weave grain, folds as bump); with `neck_skin`
    (a top), that person's skin where the per-vertex ``collar`` distance is < 0 (regions.BodyLabels: the
    neckline, a smooth curve across the polygons it crosses)."""
    g = NodeGraph(bpy, name)
    a, b = np.array(_lin(fabric.color)), np.array(_lin(fabric.color2))
    weave = g.noise(220.0, detail=1.0)  # thread-scale grain for every fabric
    # folds and creases (shading only: the surface, hence the ground truth, stays where it is)
    g.bump(_folds(g, fabric.roughness), 0.35, distance=0.01)
    p = fabric.pattern
    if p == "stripes":
        c = g.mix(_bands(g, "Z" if fabric.direction == 0 else "X", fabric.scale, 0.55), tuple(a), tuple(b))
    elif p == "checks":
        def bands(axis):
            w = g.nodes.new("ShaderNodeTexWave")
            w.wave_type = "BANDS"
            w.bands_direction = axis
            w.inputs["Scale"].default_value = 1.0
            g.link(g.scaled_rest(fabric.scale * WAVE_PERIOD), w.inputs["Vector"])
            return g.math("GREATER_THAN", w.outputs["Fac"], 0.5)
        c = g.mix(g.math("MULTIPLY", g.math("ADD", bands("X"), bands("Z")), 0.5), tuple(a), tuple(b))
    elif p == "dots":
        v = g.nodes.new("ShaderNodeTexVoronoi")
        v.inputs["Scale"].default_value = 1.0
        g.link(g.scaled_rest(fabric.scale), v.inputs["Vector"])
        c = g.mix(g.math("LESS_THAN", v.outputs["Distance"], 0.3), tuple(a), tuple(b))
    elif p == "denim":
        diag = g.noise((600.0, 600.0, 40.0), detail=2.0)
        c = g.mix(g.math("MULTIPLY", diag, 0.7), tuple(a), tuple(a * 0.5 + b * 0.5))
        wear = g.noise(6.0, detail=2.0)
        c = g.mix(g.math("MULTIPLY", wear, 0.5), c, tuple(a * 1.6))
    elif p == "mottled":
        c, _ = g.ramp(g.noise(fabric.scale, detail=3.0), [(0.4, tuple(a)), (0.6, tuple(b))])
    elif p == "knit":
        w = g.nodes.new("ShaderNodeTexWave")
        w.wave_type = "RINGS"
        w.inputs["Scale"].default_value = 1.0
        w.inputs["Distortion"].default_value = 2.0
        g.link(g.scaled_rest(fabric.scale * WAVE_PERIOD), w.inputs["Vector"])
        c = g.mix(g.math("MULTIPLY", w.outputs["Fac"], 0.6), tuple(a), tuple(a * 0.6 + b * 0.4))
        g.bump(w.outputs["Fac"], 0.3)
    elif p == "plaid":
        c = _plaid(g, fabric.scale, a, b)
    elif p == "floral":
        c = _floral(g, fabric.scale, a, b)
    elif p == "camo":
        c, ramp = g.ramp(g.noise(fabric.scale, detail=3.0, roughness=0.6),
                         [(0.0, tuple(a)), (0.44, tuple(a * 0.5 + b * 0.5)), (0.53, tuple(b)), (0.6, tuple(a * 0.45))])
        ramp.color_ramp.interpolation = "CONSTANT"  # hard-edged blotches
    else:  # solid with large soft shading variation
        c = g.mix(g.math("MULTIPLY", g.noise(8.0, detail=2.0), 0.5), tuple(a), tuple(a * 0.75))
    c = g.mix(g.math("MULTIPLY", weave, 0.3), c, tuple(a * 0.6))
    if p != "knit":
        g.bump(weave, 0.08)
    roughness = fabric.roughness
    if neck_skin is not None:  # the skin's colour and sheen below the neckline
        on_fabric = g.smoothstep(g.attribute("collar"), -0.001, 0.001)
        c = g.mix(on_fabric, _skin_tone(g, neck_skin)[0], c)
        roughness = g.math("ADD", g.math("MULTIPLY", on_fabric, fabric.roughness - SKIN_ROUGHNESS), SKIN_ROUGHNESS)
    return g.finish(c, roughness=roughness, specular=0.3)


def _plain(bpy, name: str, rgb, roughness: float):
    return NodeGraph(bpy, name).finish(tuple(_lin(rgb)), roughness=roughness)


def _shoes(bpy, name: str, look: Look, floor_z: float):
    """Shoes: the upper in the shoe colour with grain, a sole of its own colour up to ``look.sole_height`` above the
    body's lowest rest point ``floor_z`` (a soft 2 mm edge) and a dark stitch line just above it."""
    g = NodeGraph(bpy, name)
    upper = np.array(_lin(look.shoes))
    c = g.mix(g.math("MULTIPLY", g.noise(150.0, detail=2.0), 0.25), tuple(upper), tuple(upper * 0.6))
    z = g.nodes.new("ShaderNodeSeparateXYZ")
    g.link(g.rest(), z.inputs["Vector"])
    height = g.math("SUBTRACT", z.outputs["Z"], floor_z)
    top = look.sole_height
    on_sole = g.math("SUBTRACT", 1.0, g.smoothstep(height, top - 0.001, top + 0.001))
    c = g.mix(on_sole, c, _lin(look.sole))
    stitch = g.math("LESS_THAN", g.math("ABSOLUTE", g.math("SUBTRACT", height, top + 0.005)), 0.0012)
    c = g.mix(g.math("MULTIPLY", stitch, 0.7), c, tuple(upper * 0.3))
    return g.finish(c, roughness=0.35)


def build_materials(bpy, look: Look, name: str, floor_z: float) -> list:
    """One Blender material per ``regions.SLOTS`` entry, in that order. floor_z: the body's lowest rest height (z,
    metres: the soles of the feet), where the shoes' soles start."""
    from datagen.actors.humans.regions import SLOTS

    mats = {
        "skin": _skin(bpy, f"{name}_skin", look),
        "face_skin": _skin(bpy, f"{name}_face", look, blush=0.15, lips=True),
        "lips": _lips(bpy, f"{name}_lips", look),
        "eye": _eye(bpy, f"{name}_eye", look),
        "hair": _hair(bpy, f"{name}_hair", look.hair),
        "top": fabric_material(bpy, f"{name}_top", look.top, neck_skin=look),
        "bottom": fabric_material(bpy, f"{name}_bottom", look.bottom),
        "shoes": _shoes(bpy, f"{name}_shoes", look, floor_z),
        "inner": _plain(bpy, f"{name}_inner", (0.35, 0.08, 0.08), roughness=0.5),
    }
    return [mats[s] for s in SLOTS]
