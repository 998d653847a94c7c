"""Faces that move: expression tracks over anny's 52 face units, blinks, gaze and head motion.

``FaceTrack.sample(rng, ...)`` draws one person's facial performance as a function of scene time (s):

* expressions: key poses (smile, grin, surprise, anger, sadness, disgust, pucker, cheek puff, smirk, or
  neutral) at random times 0.5-1.8 s apart, each at a random intensity, eased into each other
  (smoothstep), so the face never jumps between frames;
* talking (some people): the jaw and lips open and close at 3-5 Hz with varying amplitude;
* blinks: both eyelids close in ~70 ms and open in ~120 ms, every 0.8 s + an exponential wait
  (mean ``blink_interval``); a rare wink closes one eye;
* gaze: the eyes jump (saccades, ~50 ms) to a new target every 0.4-2 s (yaw +-20 deg, pitch -12..10 deg);
* head motion: yaw/pitch/roll as sums of slow sinusoids (0.1-0.7 Hz), amplitudes scaled by
  ``head_motion`` (1: up to ~+-20 deg of yaw); added on top of the clip's head rotation.

``evaluate(times)`` -> ``units (T, 52)`` in anny's ``facial_action_labels`` order, ``gaze (T, 2)``
(yaw, pitch rad), ``head (T, 3)`` (yaw about z, pitch about x, roll about y, rad, in the body's rest
frame). Pure numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4,
              "eyeSquintLeft": 0.25, "eyeSquintRight": 0.25},
    "grin": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "jawOpen": 0.25, "mouthUpperUpLeft": 0.4,
             "mouthUpperUpRight": 0.4, "mouthLowerDownLeft": 0.4, "mouthLowerDownRight": 0.4,
             "cheekSquintLeft": 0.6, "cheekSquintRight": 0.6, "eyeSquintLeft": 0.4, "eyeSquintRight": 0.4},
    "surprise": {"browInnerUp": 0.9, "browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "eyeWideLeft": 0.8,
                 "eyeWideRight": 0.8, "jawOpen": 0.5, "mouthFunnel": 0.25},
    "anger": {"browDownLeft": 0.9, "browDownRight": 0.9, "noseSneerLeft": 0.5, "noseSneerRight": 0.5,
              "eyeSquintLeft": 0.4, "eyeSquintRight": 0.4, "mouthPressLeft": 0.5, "mouthPressRight": 0.5,
              "jawForward": 0.2},
    "sad": {"browInnerUp": 0.8, "mouthFrownLeft": 0.7, "mouthFrownRight": 0.7, "mouthShrugLower": 0.4,
            "eyeSquintLeft": 0.1, "eyeSquintRight": 0.1},
    "disgust": {"noseSneerLeft": 0.9, "noseSneerRight": 0.7, "mouthUpperUpLeft": 0.7, "mouthUpperUpRight": 0.5,
                "browDownLeft": 0.5, "browDownRight": 0.4, "mouthFrownLeft": 0.3},
    "pucker": {"mouthPucker": 0.9, "mouthFunnel": 0.3},
    "cheek_puff": {"cheekPuff": 0.9, "mouthClose": 0.3},
    "smirk": {"mouthSmileLeft": 0.8, "mouthDimpleLeft": 0.4, "browOuterUpLeft": 0.3, "mouthLeft": 0.3},
}
EXPRESSION_P = {"neutral": 0.22, "smile": 0.18, "grin": 0.08, "surprise": 0.1, "anger": 0.08, "sad": 0.08,
                "disgust": 0.06, "pucker": 0.06, "cheek_puff": 0.05, "smirk": 0.09}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class FaceTrack:
    """One person's facial performance (see the module docstring). Times are scene seconds."""

    labels: list[str]
    key_times: np.ndarray  # (K,)
    key_names: list[str]
    key_strength: np.ndarray  # (K,)
    talk: dict = field(default_factory=dict)  # {} or {"freq", "amp", "phase"}
    blinks: list[tuple[float, str]] = field(default_factory=list)  # (start time, "both" | "L" | "R")
    gaze_times: np.ndarray = field(default_factory=lambda: np.zeros(1))
    gaze_targets: np.ndarray = field(default_factory=lambda: np.zeros((1, 2)))  # (yaw, pitch) rad
    head_waves: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (axis, amp rad, freq Hz, phase)

    @staticmethod
    def sample(rng: np.random.Generator, labels: list[str], start: float, end: float, *,
               expressive: float = 1.0, head_motion: float = 1.0, blink_interval: float = 3.0,
               talk_probability: float = 0.4) -> "FaceTrack":
        """Draw a performance covering scene times [start, end] (s); expressive scales intensities."""
        names = list(EXPRESSION_P)
        p = np.array([EXPRESSION_P[n] for n in names])
        t, key_t, key_n = start - rng.uniform(0.0, 1.0), [], []
        while True:
            key_t.append(t)
            key_n.append(str(rng.choice(names, p=p)))
            if t > end:
                break
            t += rng.uniform(0.5, 1.8)
        strength = rng.uniform(0.4, 1.0, size=len(key_t)) * expressive
        talk = {}
        if rng.uniform() < talk_probability:
            talk = {"freq": float(rng.uniform(3.0, 5.0)), "amp": float(rng.uniform(0.15, 0.4)),
                    "phase": float(rng.uniform(0, 2 * np.pi))}
        blinks, t = [], start - rng.uniform(0.0, blink_interval)
        while t < end + 0.5:
            kind = "both" if rng.uniform() > 0.03 else str(rng.choice(["L", "R"]))
            blinks.append((float(t), kind))
            t += 0.8 + rng.exponential(max(blink_interval - 0.8, 0.1))
        gaze_t, t = [], start - rng.uniform(0.0, 1.0)
        while t < end + 0.5:
            gaze_t.append(t)
            t += rng.uniform(0.4, 2.0)
        gaze = np.stack([rng.uniform(-0.35, 0.35, len(gaze_t)), rng.uniform(-0.2, 0.17, len(gaze_t))], 1)
        gaze[0] *= 0.3  # most people start looking roughly ahead
        waves = []
        for axis, amp in ((0, 0.2), (1, 0.1), (2, 0.06)):  # yaw, pitch, roll: up to ~11, 6, 3 deg each
            for _ in range(2):
                waves.append((axis, amp * head_motion * rng.uniform(0.3, 1.0), rng.uniform(0.1, 0.7),
                              rng.uniform(0, 2 * np.pi)))
        return FaceTrack(labels=list(labels), key_times=np.array(key_t), key_names=key_n, key_strength=strength,
                         talk=talk, blinks=blinks, gaze_times=np.array(gaze_t), gaze_targets=gaze,
                         head_waves=np.array(waves, dtype=np.float64).reshape(-1, 4))

    # ------------------------------------------------------------------------------------------------
    def _pose_vector(self, name: str) -> np.ndarray:
        v = np.zeros(len(self.labels))
        for k, w in EXPRESSIONS[name].items():
            if k in self.labels:
                v[self.labels.index(k)] = w
        return v

    def evaluate(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> units (T, 52) in [0, 1], gaze (T, 2) rad, head (T, 3) rad for scene times (T,)."""
        times = np.asarray(times, dtype=np.float64)
        keys = np.stack([self._pose_vector(n) * s for n, s in zip(self.key_names, self.key_strength)])
        k = np.clip(np.searchsorted(self.key_times, times, side="right") - 1, 0, len(self.key_times) - 2)
        span = self.key_times[k + 1] - self.key_times[k]
        w = _smoothstep((times - self.key_times[k]) / span)[:, None]
        units = (1 - w) * keys[k] + w * keys[k + 1]
        L = self.labels.index
        if self.talk:
            open_ = self.talk["amp"] * 0.5 * (1 + np.sin(2 * np.pi * self.talk["freq"] * times + self.talk["phase"]))
            open_ *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * times + self.talk["phase"]) ** 2  # phrasing
            units[:, L("jawOpen")] += open_
            units[:, L("mouthFunnel")] += 0.4 * open_ * (np.sin(2 * np.pi * 1.3 * times) > 0.3)
            units[:, L("mouthClose")] += 0.2 * (self.talk["amp"] - open_)
        blink = np.zeros((len(times), 2))
        for t0, kind in self.blinks:
            dt = times - t0
            closing = _smoothstep(dt / 0.07)
            opening = 1.0 - _smoothstep((dt - 0.1) / 0.12)
            b = np.where(dt < 0.1, closing, opening) * (dt >= 0)
            if kind in ("both", "L"):
                blink[:, 0] = np.maximum(blink[:, 0], b)
            if kind in ("both", "R"):
                blink[:, 1] = np.maximum(blink[:, 1], b)
        units[:, L("eyeBlinkLeft")] = np.maximum(units[:, L("eyeBlinkLeft")], blink[:, 0])
        units[:, L("eyeBlinkRight")] = np.maximum(units[:, L("eyeBlinkRight")], blink[:, 1])
        units = np.clip(units, 0.0, 1.0)
        # gaze: hold a target, jump to the next in 50 ms
        g = np.clip(np.searchsorted(self.gaze_times, times, side="right") - 1, 0, len(self.gaze_times) - 1)
        prev = self.gaze_targets[np.maximum(g - 1, 0)]
        w = _smoothstep((times - self.gaze_times[g]) / 0.05)[:, None]
        gaze = (1 - w) * prev + w * self.gaze_targets[g]
        head = np.zeros((len(times), 3))
        for axis, amp, freq, phase in self.head_waves:
            head[:, int(axis)] += amp * np.sin(2 * np.pi * freq * times + phase)
        return units, gaze, head

    def meta(self) -> dict:
        return {"expressions": [[round(float(t), 3), n, round(float(s), 3)]
                                for t, n, s in zip(self.key_times, self.key_names, self.key_strength)],
                "talk": dict(self.talk), "blinks": [[round(t, 3), k] for t, k in self.blinks],
                "gaze_changes": len(self.gaze_times),
                "head_waves": self.head_waves.round(4).tolist()}


def head_rotation(angles: np.ndarray) -> np.ndarray:
    """(T, 3) yaw (about z), pitch (about x), roll (about y) rad -> (T, 3, 3) rotations in the anny rest
    frame (applied before the clip's head rotation): R = Rz(yaw) Rx(pitch) Ry(roll)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("ZXY", angles).as_matrix()
