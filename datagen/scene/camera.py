"""The scene camera (step 2 of render_scene, after the actors): static, linear or orbiting around a target, or a
close-up that follows one person's face, upper body or body like a steadicam; keyframed at frames 0..T+1."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.scene.build import uniform


def camera_target(cfg, rng, built) -> np.ndarray:
    """World point the camera looks at (see SceneConfig.camera_target)."""
    jitter = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8)])
    if cfg.camera_target == "scene" or not built.actors:
        return jitter
    if cfg.camera_target == "actors":
        mids = np.stack([a.trajectory[len(a.trajectory) // 2] for a in built.actors])
        return np.array([*mids.mean(0), 0.0]) + jitter * [0.3, 0.3, 1.0]
    for a in built.actors:
        if cfg.camera_target in a.points:
            return np.asarray(a.points[cfg.camera_target], float).mean(0)
    raise ValueError(f"camera_target {cfg.camera_target!r}: no actor reports that point "
                     f"(actors: {[a.kind for a in built.actors]})")


@dataclass(frozen=True)
class Framing:
    """A close-up framing (SceneConfig.camera_framing).

    height: visible height (m) at the subject's distance, drawn in this range; below: the aim point lies this far
    below the eyes (m); max_azimuth: largest azimuth of the camera away from the face's direction (deg); stray: how
    far the head may stray from the aim point, as a share of the visible height (None: as far as the drawn follow
    share lets it); calm: the largest distance (m) the subject's head may stray from a straight course for this
    framing, else the shot widens to ``wider``.
    """

    height: tuple[float, float]
    below: float
    max_azimuth: float
    stray: float | None = None
    calm: float | None = None
    wider: str | None = None


# A camera operator keeps a close-up's face in the frame, and does not film a somersault from 25 cm: with the
# follow share alone a dancing person's face crossed the frame in two frames and left it (face_closeup scene 1: 45
# px a frame at 128x128, 18 % of the points visible), and the camera ended inside the bending body (black frames).
# Heads stray from a straight course (m, 24 frames at 12 fps, head motion 1.5): stand 0.02-0.05, walk 0.06-0.09,
# run 0.15-0.29, kick and punch 0.2-0.36, dances and spins 0.3-0.9, flips and rolls 0.6-0.9.
FRAMINGS = {"face": Framing((0.17, 0.26), 0.04, 25.0, stray=0.1, calm=0.15, wider="upper_body"),
            "upper_body": Framing((0.75, 1.1), 0.3, 55.0, stray=0.15, calm=0.5, wider="body"),
            "body": Framing((2.0, 2.8), 0.75, 80.0)}


def _steady(path: np.ndarray) -> np.ndarray:
    """(n, 3) least-squares straight line through a path (n, 3) at the same times: a steadicam's course."""
    t = np.arange(len(path), dtype=float)
    A = np.stack([np.ones_like(t), t], 1)
    coef, *_ = np.linalg.lstsq(A, path, rcond=None)
    return A @ coef


def _closeup_path(cfg, rng, built, framing: str, n: int):
    """Camera positions and aim points (n, 3) for frames 0..n-1 framing one person's head/upper body/body, and
    the framing used (``framing``, or a wider one for a subject too wild for it: Framing.calm).

    The subject is the calmest actor reporting the points "head" and "face_front" (the anny human does): the
    one whose head strays least from a straight course. The camera looks at the face from within FRAMINGS'
    azimuth of the face's direction, 5 deg below to 20 deg above it, at the distance where the framing's
    visible height fills the image's shorter side. Like a steadicam it moves along the straight course of the
    head plus a random share of the head's own motion (face: 30-80 %, wider shots: 0-50 %), at most
    Framing.stray of the visible height away from it, and turns with 30-70 % of the face's turning (at most 45
    deg), so the face moves and turns in the frame but stays in view.
    The viewpoint is redrawn (10 tries) until the camera keeps 0.3 m clear of the other actors (a crowd);
    objects are later kept clear of the camera's ground path.
    """
    subjects = [a for a in built.actors if "head" in a.points and "face_front" in a.points]
    if not subjects:
        raise ValueError(f"camera_framing {framing!r} needs an actor with 'head' and 'face_front' points "
                         f"(kind human); actors: {[a.kind for a in built.actors]}")

    def pad(x):  # rendered frames -> camera keys 0..T+1
        x = np.asarray(x, float)
        return np.concatenate([x[:1], x, x[-1:]])[:n]

    strays = [np.abs(pad(a.points["head"]) - _steady(pad(a.points["head"]))).max() for a in subjects]
    a = subjects[int(np.argmin(strays))]
    while FRAMINGS[framing].calm is not None and min(strays) > FRAMINGS[framing].calm:
        framing = FRAMINGS[framing].wider
    head, ahead = pad(a.points["head"]), pad(a.points["face_front"])
    shot = FRAMINGS[framing]
    (lo, hi), below, max_az, stray = shot.height, shot.below, shot.max_azimuth, shot.stray
    mid = n // 2
    face_yaw = np.unwrap(np.arctan2(ahead[:, 1] - head[:, 1], ahead[:, 0] - head[:, 0]))
    turn = rng.uniform(0.3, 0.7)  # a spinning subject: the camera swings by at most 45 deg
    half_fov = np.arctan(cfg.sensor_width / 2 / cfg.focal_length) * min(cfg.height, cfg.width) / cfg.width
    height = rng.uniform(lo, hi)
    dist = height / (2 * np.tan(half_fov))
    course = _steady(head)
    follow = rng.uniform(0.3, 0.8) if framing == "face" else rng.uniform(0.0, 0.5)
    aim = course + follow * (head - course)
    if stray is not None:  # the head stays within `stray` x the visible height of the aim point
        off = head - aim
        norm = np.linalg.norm(off, axis=1, keepdims=True)
        aim = head - off * np.minimum(1.0, stray * height / np.maximum(norm, 1e-9))
    aim = aim - np.array([0.0, 0.0, below])
    aim[:, 2] = np.maximum(aim[:, 2], 0.15)  # someone lying or rolling on the floor: stay above it
    others = [(pad(np.c_[o.trajectory, np.zeros(len(o.trajectory))])[:, :2], o.radius) for o in built.actors
              if o is not a]
    best, best_clear = None, -np.inf
    for _ in range(10):  # the first viewpoint that stays clear of the other actors' bodies (crowds), else the best
        yaw = face_yaw[mid] + np.clip(turn * (face_yaw - face_yaw[mid]), -np.pi / 4, np.pi / 4) \
            + np.deg2rad(rng.uniform(-max_az, max_az))
        elev = np.deg2rad(rng.uniform(-5.0, 20.0))
        direction = np.stack([np.cos(elev) * np.cos(yaw), np.cos(elev) * np.sin(yaw), np.full(n, np.sin(elev))], -1)
        pos = aim + direction * dist
        pos[:, 2] = np.maximum(pos[:, 2], 0.3)
        clear = min((np.linalg.norm(pos[:, :2] - path, axis=1) - radius).min() for path, radius in others) \
            if others else np.inf
        if clear > best_clear:
            best, best_clear = pos, clear
        if clear > 0.3:
            break
    return best, aim, framing


def add_camera(kb, scene, cfg, rng, built):
    """Camera keyframed at every frame; returns (motion kind, framing)."""
    framing = cfg.camera_framing[0] if len(cfg.camera_framing) == 1 else \
        cfg.camera_framing[rng.randint(len(cfg.camera_framing))]  # one choice: no draw (seeds stay as they were)
    if framing != "scene":
        cam = kb.PerspectiveCamera(name="camera", focal_length=cfg.focal_length, sensor_width=cfg.sensor_width)
        scene += cam
        scene.camera = cam
        pos, aim, framing = _closeup_path(cfg, rng, built, framing, cfg.num_frames + 2)
        built.camera_path = pos[:, :2]
        for f, (p, a) in enumerate(zip(pos, aim)):
            cam.position = tuple(p)
            cam.look_at(tuple(a))
            cam.keyframe_insert("position", f)
            cam.keyframe_insert("quaternion", f)
        return "follow", framing
    motion = cfg.camera_motion[rng.randint(len(cfg.camera_motion))]
    dist, elev = uniform(rng, cfg.camera_distance), np.deg2rad(uniform(rng, cfg.camera_elevation))
    azim = rng.uniform(0, 2 * np.pi)
    target = camera_target(cfg, rng, built)
    focal = uniform(rng, cfg.focal_length_range) if cfg.focal_length_range else cfg.focal_length
    cam = kb.PerspectiveCamera(name="camera", focal_length=focal, sensor_width=cfg.sensor_width)
    scene += cam
    scene.camera = cam
    t = np.arange(cfg.num_frames + 2) / cfg.fps  # frames 0..T+1 (flow needs the next frame)
    if motion == "orbit":
        sign = rng.choice([-1.0, 1.0])
        az = azim + sign * np.deg2rad(uniform(rng, cfg.camera_orbit_speed)) * t
        pos = target + dist * np.stack([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az),
                                        np.full_like(az, np.sin(elev))], -1)
    else:
        start = target + dist * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim),
                                          np.sin(elev)])
        if motion == "linear":
            d = rng.normal(0, 1, 3)
            d[2] *= 0.3
            d /= np.linalg.norm(d)
            speed = (uniform(rng, cfg.camera_linear_travel) * cfg.fps / max(cfg.num_frames - 1, 1)
                     if cfg.camera_linear_travel else uniform(rng, cfg.camera_linear_speed))
            pos = start + np.outer(t, d * speed)
            pos[:, 2] = np.maximum(pos[:, 2], 0.5)
        elif motion == "static":
            pos = np.repeat(start[None], len(t), 0)
        else:
            raise ValueError(f"camera_motion must be static|linear|orbit, got {motion!r}")
    for f, p in enumerate(pos):
        cam.position = tuple(p)
        cam.look_at(tuple(target))
        cam.keyframe_insert("position", f)
        cam.keyframe_insert("quaternion", f)
    return motion, framing
