"""`SceneConfig`: everything that defines one synthetic scene (typed for OmegaConf structured configs).

Pure dataclasses (no Blender/Kubric import), so configs load anywhere. Lengths are metres (Kubric/
PyBullet units), angles degrees, times seconds. Ranges are ``[low, high]`` lists (inclusive for
counts). See docs/datagen_scenes.md for the meaning of every key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
class SceneConfig:
    # --- video -------------------------------------------------------------------------------
    resolution: list[int] = field(default_factory=lambda: [256, 256])  # (H, W) pixels
    num_frames: int = 24
    fps: int = 12
    step_rate: int = 240  # physics steps per second (multiple of fps)
    samples_per_pixel: int = 32  # Cycles samples for the RGB image
    adaptive_sampling: bool = False  # Cycles adaptive sampling (stops converged pixels early)
    use_denoising: bool = False  # OpenImageDenoise on the RGB image (slow on CPU)
    motion_blur: list[float] = field(default_factory=lambda: [0.0, 0.0])  # vector-blur factor range
    max_bounces: int = 4  # Cycles light bounces (Blender default 12; 4 is ~2x faster, looks alike)
    persistent_data: bool = False  # keep Cycles' scene between frames (no CPU gain measured here)
    exact_gt_pass: bool = True  # 2nd 1-spp render with a point-sized pixel filter for GT depth/seg/flow
    # --- content -----------------------------------------------------------------------------
    num_static_objects: list[int] = field(default_factory=lambda: [3, 6])
    num_tossed_objects: list[int] = field(default_factory=lambda: [1, 3])
    object_scale: list[float] = field(default_factory=lambda: [0.6, 1.6])  # longest side, metres
    spawn_region_half: float = 2.5  # objects live in [-h, h]^2 on the floor
    toss_height: list[float] = field(default_factory=lambda: [1.0, 2.5])
    toss_speed: list[float] = field(default_factory=lambda: [0.0, 3.0])  # horizontal m/s
    num_humans: int = 0  # articulated pybullet_data humanoid driven by mocap (datagen.articulated)
    num_animals: int = 0  # articulated laikago quadruped (datagen.articulated)
    # --- appearance --------------------------------------------------------------------------
    floor_textures: list[str] = field(default_factory=lambda: ["procedural", "image"])
    # dome also: "hdri" (random texture of a kubric_sources entry with category "hdri") or a path/URL
    # of an equirectangular panorama (HDRI or LDR), mapped onto the dome as an emissive backdrop
    dome_textures: list[str] = field(default_factory=lambda: ["procedural", "image"])
    image_textures: list[str] = field(default_factory=list)  # extra image files; default: pybullet_data
    object_texture_prob: float = 0.5  # P(object gets a procedural/image texture instead of a colour)
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
    # --- assets ------------------------------------------------------------------------------
    pybullet_objects: list[str] = field(default_factory=list)  # ids to use (default: all)
    pybullet_weight: float = 1.0
    kubric_sources: list[AssetSourceConfig] = field(default_factory=list)
    asset_cache_dir: str = ""  # normalised meshes (default: ~/.cache/trackforge/assets)
    # --- ground truth ------------------------------------------------------------------------
    num_tracks: int = 2048
    foreground_fraction: float = 0.5  # share of queries sampled on objects/humans/animals
    depth_tolerance: float = 0.03  # relative: occluded if rendered z < (1 - tol) * track z
    depth_tolerance_abs: float = 0.02  # metres, added to the relative tolerance
    # --- robustness --------------------------------------------------------------------------
    render_timeout_s: float = 900.0  # the pipeline kills a scene process after this
    max_placement_trials: int = 50
    verbose: bool = False

    @property
    def height(self) -> int:
        return int(self.resolution[0])

    @property
    def width(self) -> int:
        return int(self.resolution[1])

    def to_dict(self) -> dict:
        """JSON-able copy (goes into TrackSample.meta["config"])."""
        return asdict(self)
