"""Per-polygon regions of an anny body: anatomy (face, lips, brows, eyes, hands...) and a random outfit.

Two label sets, both per polygon (F,):

* ``REGIONS`` (what the ground truth reports; the contract with the annotator): ``face`` (skin of the
  face, eyes, lips, brows, eyelids), ``skin`` (all other bare skin), ``hair``, ``top``, ``bottom``,
  ``shoes``, ``inner`` (mouth cavity, tongue, eye sockets: rarely seen).
* ``SLOTS`` (what the materials need, finer): the face split into face skin / lips / eyes, and
  a ``dress`` look when top and bottom share one fabric.

Where the labels come from (all on the REST body, so they stick to the deforming surface):

* anny's body-part segmentation (``data/segmentation/body_parts_segmentation.png``: head, hands, feet,
  eyes, eye sockets, mouth cavity, tongue) and MPFB2's UV masks (``mpfb2/textures/mpfb_face.jpg``,
  ``mpfb_lips.jpg``, ``mpfb_eyelids.jpg``, ``mpfb_ears.jpg``), looked up at each polygon's UV centroid;
* brows and the hairline: arcs in head-relative units (the distance between the eye centres), so they
  sit at the same place on every face; both are PAINTED from per-vertex values (``BodyLabels.brow``,
  ``BodyLabels.hairline``) that the skin materials read, so their edges are smooth curves across polygons;
  so are the lips' outline (``BodyLabels.lips``: signed distance to MPFB2's lips mask) and the neckline
  (``BodyLabels.collar``): the polygons they cross carry the slot that paints both sides (face skin, top);
* clothing cut lines: positions along the arm (``arm_t``: 0 shoulder, 1 elbow, 2 wrist) and the leg
  (``leg_t``: 0 hip, 1 knee, 2 ankle) of each polygon's centroid, and heights relative to the rest
  skeleton's joints, so a sleeve ends at the same place on every body shape;
* hair: head polygons outside the face/ears, above a hairline that depends on the style.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

REGIONS = ["skin", "face", "hair", "top", "bottom", "shoes", "inner"]
SLOTS = ["skin", "face_skin", "lips", "eye", "hair", "top", "bottom", "shoes", "inner"]
SLOT_TO_REGION = {"skin": "skin", "face_skin": "face", "lips": "face", "eye": "face",
                  "hair": "hair", "top": "top", "bottom": "bottom", "shoes": "shoes", "inner": "inner"}

HAIR_STYLES = ("short", "long", "bun", "buzz", "bald")
HAIR_MARGIN = 0.08  # eye distances: hair polygons lie this far inside the hairline (the rest is painted)
HAIR_STYLE_P = (0.3, 0.45, 0.15, 0.05, 0.05)  # women; men: HAIR_STYLE_P_MALE
HAIR_STYLE_P_MALE = (0.55, 0.1, 0.05, 0.2, 0.1)
BOTTOM_KINDS = ("trousers", "shorts", "skirt")
BOTTOM_KIND_P = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class Outfit:
    """Cut lines of the clothes, in body-relative units (see the module docstring).

    sleeve: arm_t where sleeves end (0 sleeveless .. 2 long); hem: top's lower edge, fraction of the way
    from the hip joints (0) to the waist (1) (negative: below the hips); neckline: how far the neckline
    dips in front (m); legs: leg_t where the bottom ends (0.4 hot pants, 0.8 shorts/skirt, ~2 trousers);
    bottom: trousers | shorts | skirt; dress: top and bottom in one fabric; boots: leg_t above which
    shoes go up the shin (2 = ankle shoes); hair: one of HAIR_STYLES.
    """

    sleeve: float
    hem: float
    neckline: float
    legs: float
    bottom: str
    dress: bool
    boots: float
    hair: str

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def sample(rng: np.random.Generator, female: bool, hair_styles: list[str] | None = None) -> "Outfit":
        """A random outfit; ``hair_styles``: draw the hair style uniformly from these (default: by HAIR_STYLE_P)."""
        sleeve = float(rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.35, 0.8), rng.uniform(1.75, 1.95)],
                                  p=[0.15, 0.45, 0.4]))
        bottom = str(rng.choice(BOTTOM_KINDS, p=(0.45, 0.2, 0.35) if female else (0.7, 0.3, 0.0)))
        legs = {"trousers": rng.uniform(1.85, 1.98), "shorts": rng.uniform(0.35, 0.9),
                "skirt": rng.uniform(0.45, 1.3)}[bottom]
        hair_p = np.array(HAIR_STYLE_P if female else HAIR_STYLE_P_MALE)
        if hair_styles:
            hair_p = np.array([float(h in hair_styles) for h in HAIR_STYLES])
        return Outfit(sleeve=sleeve, hem=float(rng.uniform(-0.35, 0.3)), neckline=float(rng.uniform(0.0, 0.06)),
                      legs=float(legs), bottom=bottom, dress=bool(bottom == "skirt" and rng.uniform() < 0.4),
                      boots=float(rng.choice([2.0, rng.uniform(1.5, 1.8)], p=[0.8, 0.2])),
                      hair=str(rng.choice(HAIR_STYLES, p=hair_p / hair_p.sum())))


# ----------------------------------------------------------------------------------------------------------
# UV masks shipped with anny


def anny_data_dir() -> Path:
    import anny

    return Path(anny.__file__).parent / "data"


@lru_cache(maxsize=1)
def _segmentation() -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
    import yaml
    from PIL import Image

    root = anny_data_dir() / "segmentation"
    img = np.asarray(Image.open(root / "body_parts_segmentation.png").convert("RGB"), dtype=np.int16)
    colors = yaml.safe_load((root / "body_parts_segmentation.yaml").read_text())["colors"]
    return img, {k: tuple(v) for k, v in colors.items()}


@lru_cache(maxsize=8)
def _mask(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(anny_data_dir() / "mpfb2" / "textures" / f"mpfb_{name}.jpg").convert("L"))


def _lookup(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest texel of img (H, W, ...) at uv (N, 2) (v up, as in the OBJ convention)."""
    h, w = img.shape[:2]
    col = np.clip((uv[:, 0] * w).astype(np.int64), 0, w - 1)
    row = np.clip(((1.0 - uv[:, 1]) * h).astype(np.int64), 0, h - 1)
    return img[row, col]


def body_parts(uv_centroids: np.ndarray) -> np.ndarray:
    """anny's segmentation class name per polygon (N,) from UV centroids (N, 2); unknown colours -> body."""
    img, colors = _segmentation()
    rgb = _lookup(img, uv_centroids)
    names = list(colors)
    table = np.array([colors[n] for n in names], dtype=np.int16)
    dist = np.abs(rgb[:, None, :] - table[None]).sum(-1)  # (N, classes); anti-aliased edges -> nearest
    return np.array(names, dtype=object)[dist.argmin(1)]


# ----------------------------------------------------------------------------------------------------------
# geometry helpers


def chain_coordinate(points: np.ndarray, joints: list[np.ndarray]) -> np.ndarray:
    """Position along a joint chain j0 -> j1 -> j2 of each point (N, 3): k + t on segment k (t in
    [0, 1], clamped at the ends, nearest segment wins); e.g. 0 shoulder, 1 elbow, 2 wrist."""
    best_d = np.full(len(points), np.inf)
    coord = np.zeros(len(points))
    for k in range(len(joints) - 1):
        a, b = joints[k], joints[k + 1]
        ab = b - a
        t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
        if k == 0:  # before the first joint: negative values mark the body side of the chain
            t_raw = ((points - a) @ ab) / (ab @ ab)
            t = np.where(t_raw < 0, t_raw, t)
        d = np.linalg.norm(points - (a + np.clip(t, 0, 1)[:, None] * ab), axis=1)
        take = d < best_d
        best_d = np.where(take, d, best_d)
        coord = np.where(take, k + t, coord)
    return coord


@dataclass
class BodyLabels:
    """Per-polygon labels, slot: (F,) index into SLOTS; region: (F,) index into REGIONS; and per-vertex paint the
    skin materials read (smooth across polygons): brow (V,) density in [0, 1]; hairline (V,) signed distance
    above the hairline in eye distances (> 0: hair; -10 away from the head or when bald); lash (V,) lash line
    density in [0, 1] (the eyelids' rims); lips (V,) signed distance to the lips' outline in MPFB2 mask
    texels (> 0: lips; -100 off the head), which the face skin paints; collar (V,) signed distance outside the
    neckline (m; > 0: the top's side), below which the top paints skin."""

    slot: np.ndarray
    region: np.ndarray
    brow: np.ndarray
    hairline: np.ndarray
    lash: np.ndarray
    lips: np.ndarray
    collar: np.ndarray

    @property
    def region_names(self) -> list[str]:
        return list(REGIONS)

    def count(self, region: str) -> int:
        return int((self.region == REGIONS.index(region)).sum())


_UV_LABELS: dict = {}
UV_MASKS = ("face", "eyelids", "ears", "lips")


def _uv_labels(uv: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per polygon from its UV centroid (uv: (F, 3, 2) per corner): anny's body part and MPFB2's face / eyelids /
    ears / lips masks. They depend on the topology's UVs only (the same for every phenotype): computed once per
    machine and kept in the asset cache (every scene runs in a process of its own, where decoding anny's label
    images cost ~0.15 s a scene), then once per process."""
    digest = hashlib.sha1(uv.tobytes() + str(uv.shape).encode()).hexdigest()[:16]
    if digest not in _UV_LABELS:
        _UV_LABELS.clear()
        _UV_LABELS[digest] = _uv_labels_from_disk(uv, digest)
    return _UV_LABELS[digest]


def _uv_labels_from_disk(uv: np.ndarray, digest: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from importlib.metadata import version

    from datagen.actors.humans.body import cache_dir
    from tracker.common.atomic import atomic_file

    # next to anny's model cache; the labels come from anny's images: a new anny version gets a file of its own
    path = cache_dir() / f"trackforge_uv_labels-{version('anny')}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                names = [str(n) for n in z["part_names"]]
                return (np.array(names, dtype=object)[z["part"]],
                        {**{m: z[f"mask_{m}"] for m in UV_MASKS}, "lips_distance": z["lips_distance"]})
        except (OSError, ValueError, KeyError):
            pass  # unreadable (a disk fault): computed again below and rewritten
    uvc = uv.mean(1)
    parts = body_parts(uvc)
    masks = {m: _lookup(_mask(m), uvc) > 100 for m in UV_MASKS}
    lips_distance = _signed_distance(_mask("lips") > 100)
    masks["lips_distance"] = _bilinear(lips_distance, uv.reshape(-1, 2)).reshape(uv.shape[:2]).astype(np.float32)
    names = sorted(set(parts))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        np.savez(fh, part=np.array([names.index(p) for p in parts], np.int16), part_names=np.array(names),
                 **{f"mask_{m}": v for m, v in masks.items() if m in UV_MASKS},
                 lips_distance=masks["lips_distance"])
    return parts, masks


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) texels from the outline of the boolean ``mask``: > 0 inside, < 0 outside."""
    from scipy.ndimage import distance_transform_edt

    return (distance_transform_edt(mask) - distance_transform_edt(~mask)).astype(np.float32)


def _bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """img (H, W) sampled between texel centres at uv (N, 2) (v up, as _lookup)."""
    h, w = img.shape
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.minimum(x.astype(np.int64), w - 2), np.minimum(y.astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def label_body(rest, outfit: Outfit) -> BodyLabels:
    """Labels of every polygon of ``rest`` (``datagen.actors.humans.body.RestBody``) wearing ``outfit``."""
    faces = rest.faces
    cen = rest.vertices[faces].mean(1)  # (F, 3) centroids
    part, uv_masks = _uv_labels(rest.uv)
    bl = rest.bone_labels
    h = rest.head

    def wsum(prefixes: tuple[str, ...]) -> np.ndarray:
        """(F,) summed skin weight of the bones named ``prefixes*`` at each polygon's centroid."""
        cols = [i for i, n in enumerate(bl) if n.startswith(prefixes)]
        return rest.weights[:, cols].sum(1)[faces].mean(1)

    slot = np.full(len(faces), SLOTS.index("skin"), dtype=np.int64)
    S = SLOTS.index

    # --- clothing ---------------------------------------------------------------------------------------
    x = cen[:, 0]
    arm_w = wsum(("upperarm", "lowerarm", "wrist", "finger", "metacarpal"))
    leg_w = wsum(("upperleg", "lowerleg", "foot", "toe"))
    arm_t = np.where(x >= 0, chain_coordinate(cen, [h("upperarm01.L"), h("lowerarm01.L"), h("wrist.L")]),
                     chain_coordinate(cen, [h("upperarm01.R"), h("lowerarm01.R"), h("wrist.R")]))
    leg_t = np.where(x >= 0, chain_coordinate(cen, [h("upperleg01.L"), h("lowerleg01.L"), h("foot.L")]),
                     chain_coordinate(cen, [h("upperleg01.R"), h("lowerleg01.R"), h("foot.R")]))
    hip_z = 0.5 * (h("upperleg01.L")[2] + h("upperleg01.R")[2])
    waist_z = h("spine03")[2]
    is_body = part == "body"
    is_arm = is_body & (arm_w > 0.5)
    is_leg = is_body & (leg_w > 0.5) & ~is_arm
    torso = is_body & ~is_arm & ~is_leg
    hem_z = hip_z + outfit.hem * (waist_z - hip_z)
    # neckline: a sphere around the neck base; a deeper neckline moves the sphere's centre down the front. Its
    # distance per vertex is painted (the top's material shows skin where it is < 0: a smooth curve, not the
    # polygons' zigzag), and a polygon the line crosses is the top's, so that the top paints the line across it
    neck_base = h("neck01") + np.array([0.0, -0.35 * outfit.neckline, -outfit.neckline])
    collar_v = np.linalg.norm(rest.vertices - neck_base, axis=1) - (0.075 + 0.5 * outfit.neckline)
    collar = collar_v[faces].max(1) > 0
    top = (torso & (cen[:, 2] >= hem_z) & collar) | (is_arm & (arm_t < outfit.sleeve))
    # a skirt/shorts/trousers waistband sits around the waist; the top covers it when they overlap
    bottom = (torso & (cen[:, 2] < waist_z)) | (is_leg & (leg_t < outfit.legs))
    if outfit.bottom == "skirt":  # a skirt hangs: both legs to the same height (no leg_t wrap on the inside)
        skirt_z = h("upperleg01.L")[2] + (outfit.legs / 2.0) * (h("foot.L")[2] - h("upperleg01.L")[2])
        bottom = (torso & (cen[:, 2] < waist_z)) | (is_leg & (cen[:, 2] >= skirt_z))
    shoes = np.isin(part, ["foot.L", "foot.R"]) | (is_leg & (leg_t >= outfit.boots))
    slot[bottom] = S("bottom")
    slot[top] = S("top")
    slot[shoes] = S("shoes")

    # --- head and face -------------------------------------------------------------------------------------
    # Head-relative units: d = distance between the eye centres (~6 cm on adults), so the cut lines
    # scale with children's heads too.
    head = part == "head"
    face = head & (uv_masks["face"] | uv_masks["eyelids"])
    ears = head & uv_masks["ears"]
    lips = head & uv_masks["lips"]
    # the lips' outline: a signed distance per vertex (corners of one vertex agree but at UV seams, none near the
    # lips), painted by the face skin; lips polygons are those wholly inside it
    on_head_v = _vertex_mask(faces[head], len(rest.vertices))
    lips_v = np.full(len(rest.vertices), -100.0)
    lips_v[faces.ravel()] = uv_masks["lips_distance"].ravel()
    lips_v = np.where(on_head_v, lips_v, -100.0)
    lip_edge = head & ~lips & (lips_v[faces].max(1) > 0)  # a polygon outside the mask that the outline reaches
    lips_inside = lips & (lips_v[faces].min(1) > 0)
    eye_l, eye_r = h("eye.L"), h("eye.R")
    eye_c = 0.5 * (eye_l + eye_r)
    d = float(np.linalg.norm(eye_l - eye_r))
    rel = (cen - eye_c) / d  # (F, 3) in eye-distance units; x left, y back, z up
    vrel = (rest.vertices - eye_c) / d  # (V, 3) the same units per vertex
    hairline = np.full(len(rest.vertices), -10.0)  # signed: > 0 on the hair side (eye distances)
    if outfit.hair != "bald":
        hairline = _hairline(vrel, outfit.hair)
        # hair polygons lie wholly HAIR_MARGIN inside the line; the skin materials paint the hair up to the line
        # itself from the per-vertex value, so the hairline is a smooth curve, not the polygons' zigzag
        inside = hairline[faces].min(1) > HAIR_MARGIN
        scalp = (head | (is_body & (rel[:, 2] > -2.6))) & ~ears & ~lips
        hair = scalp & inside
        hair &= ~np.isin(part, ["eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R", "eye_cavity.L",
                                "eye_cavity.R", "mouth_cavity", "tongue"])
        if outfit.hair == "bun":  # hair pulled back: no side fringe, a fuller crown
            hair |= head & ~face & (rel[:, 2] > 0.2)
        slot[hair] = S("hair")
        face &= ~hair
        on_head = _vertex_mask(faces[scalp], len(rest.vertices))
        hairline = np.where(on_head, hairline, -10.0)
    lip_edge = (lip_edge | (lips & ~lips_inside)) & (slot != S("hair"))  # the face skin paints the lips' edge
    slot[face | lip_edge] = S("face_skin")
    brow = _brows(vrel)
    on_face = _vertex_mask(faces[face], len(rest.vertices))
    brow = np.where(on_face, brow, 0.0)
    # lashes: the eyelids' rims (face vertices shared with the eye sockets), full on the upper lids
    rim = np.intersect1d(np.unique(faces[np.isin(part, ["eye_cavity.L", "eye_cavity.R"])]), np.unique(faces[face]))
    lash = np.zeros(len(rest.vertices))
    lash[rim] = np.where(vrel[rim, 2] > 0.0, 1.0, 0.5)
    slot[lips_inside] = S("lips")
    eye = np.isin(part, ["eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R"])
    slot[eye] = S("eye")
    inner = np.isin(part, ["eye_cavity.L", "eye_cavity.R", "mouth_cavity", "tongue"])
    slot[inner] = S("inner")

    region = np.array([REGIONS.index(SLOT_TO_REGION[s]) for s in SLOTS])[slot]
    return BodyLabels(slot=slot, region=region, brow=brow.astype(np.float32), hairline=hairline.astype(np.float32),
                      lash=lash.astype(np.float32), lips=lips_v.astype(np.float32),
                      collar=collar_v.astype(np.float32))


def _vertex_mask(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V,) True at the vertices of ``faces`` (F', 3)."""
    out = np.zeros(num_vertices, bool)
    out[faces.ravel()] = True
    return out


def _hairline(rel: np.ndarray, style: str) -> np.ndarray:
    """(N,) signed height above the hairline of ``style`` (eye distances; > 0: hair) of points ``rel`` (N, 3) in
    eye-distance units around the eyes' centre (x left, y back, z up). The line: a forehead line in front, above
    the ears at the sides, the nape at the back; it rises from ``side`` at the temples to ``forehead`` over the
    eyes and falls to ``nape`` behind."""
    forehead = {"short": 1.05, "buzz": 1.15, "long": 0.95, "bun": 1.0}[style]
    side = {"short": 0.3, "buzz": 0.45, "long": -0.2, "bun": 0.2}[style]
    nape = {"short": -1.2, "buzz": -0.9, "long": -1.9, "bun": -1.3}[style]
    behind = np.clip((rel[:, 1] - 0.9) / 1.2, 0.0, 1.0)  # 0 in front of the ears .. 1 at the back
    frontal = np.clip(1.0 - np.abs(rel[:, 0]) / 1.1, 0.0, 1.0) * (rel[:, 1] < 0.6)
    line = side + (forehead - side) * frontal ** 0.7
    line = np.where(behind > 0, side + (nape - side) * behind, line)
    return rel[:, 2] - line


def _brows(rel: np.ndarray) -> np.ndarray:
    """(N,) brow density in [0, 1] at points ``rel`` (eye-distance units, as _hairline): an arc above each eye
    (0.25-0.5 eye distances above the eye centre), fuller at the inner end, fading out at both ends."""
    dx = np.abs(rel[:, 0]) - 0.5  # 0 above the eye centre (eyes at +-0.5); < 0 towards the nose
    arc = 0.33 + 0.06 * (1.0 - (dx / 0.45) ** 2) - 0.05 * (dx > 0.2) * (dx - 0.2) / 0.25
    half = 0.06 + 0.025 * np.clip(-dx / 0.35, 0.0, 1.0)  # half height of the band
    band = np.clip(1.0 - np.abs(rel[:, 2] - arc) / half, 0.0, 1.0)
    ends = np.clip((0.45 - dx) / 0.15, 0.0, 1.0) * np.clip((dx + 0.38) / 0.08, 0.0, 1.0)
    return band * ends * (rel[:, 1] < -0.2)


def eye_coordinates(rest) -> np.ndarray:
    """(V,) per vertex: distance from its eye's optical axis (m) for eyeball vertices, else 1.

    The iris and pupil are painted from this (a disc around each eye's forward axis, -y at rest), so
    they are exact on the mesh and move with the eyeball bones.
    """
    v = rest.vertices
    out = np.ones(len(v))
    for side in ("L", "R"):
        c = rest.head(f"eye.{side}")
        near = np.linalg.norm(v - c, axis=1) < 0.02
        front = v[:, 1] < c[1]
        d = np.linalg.norm((v - c)[:, [0, 2]], axis=1)
        sel = near & front
        out[sel] = d[sel]
    return out
