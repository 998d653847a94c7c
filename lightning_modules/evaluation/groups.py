"""Video groups of a benchmark (e.g. people / animals): which group a video belongs to, and per-group means.

A benchmark's `groups` maps a group name to the video names (keys) in it, e.g. configs/eval/davis.yaml:
    groups: {people: [breakdance, dance-twirl, parkour], animals: [blackswan, goat, libby]}
A video in no group belongs to "other". `groups: null` on a mask benchmark means DEFAULT_GROUPS, the six DAVIS-2016
sequences of ../shared/data/davis (so `make eval DATA=../shared/data/davis` prints per-group rows without a config).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

DEFAULT_GROUPS: dict[str, list[str]] = {
    "people": ["breakdance", "dance-twirl", "parkour"],
    "animals": ["blackswan", "goat", "libby"],
}
OTHER = "other"


def resolve_groups(groups: Optional[Mapping[str, Sequence[str]]]) -> dict[str, list[str]]:
    """The mapping in use: `groups`, or DEFAULT_GROUPS when None."""
    return {str(g): [str(v) for v in names] for g, names in (DEFAULT_GROUPS if groups is None else groups).items()}


def group_names(groups: Optional[Mapping[str, Sequence[str]]]) -> list[str]:
    """Every group a video can fall in, in config order, "other" last."""
    names = list(resolve_groups(groups))
    return names if OTHER in names else [*names, OTHER]


def group_of(video: str, groups: Optional[Mapping[str, Sequence[str]]]) -> str:
    """The group listing `video`, else "other"."""
    for group, names in resolve_groups(groups).items():
        if video in names:
            return group
    return OTHER


def check_groups(groups: Optional[Mapping[str, Sequence[str]]], where: str) -> Optional[str]:
    """None when `groups` is usable; else a one-line reason naming `where` (names usable in log keys, each video in
    one group at most)."""
    if groups is None:
        return None
    seen: dict[str, str] = {}
    for group, names in groups.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(group)):
            return f"{where}: group names must be letters, digits, _ or -, got {group!r}"
        for name in names:
            if name in seen and seen[name] != group:
                return f"{where}: video {name!r} is in two groups ({seen[name]}, {group})"
            seen[name] = group
    return None


def group_means(per_video: list[dict[str, Any]], groups: Optional[Mapping[str, Sequence[str]]]
                ) -> dict[str, dict[str, Any]]:
    """Rows {"group", "model": {metric: v}, "zero_motion": {...}} -> {group: {"num_videos", "model", "zero_motion"}},
    the means over each group's videos (scoring.mean_scores), in group_names order, groups without videos left out."""
    from .scoring import mean_scores

    out: dict[str, dict[str, Any]] = {}
    for group in group_names(groups):
        rows = [r for r in per_video if r["group"] == group]
        if not rows:
            continue
        out[group] = {"num_videos": len(rows), "model": mean_scores([r["model"] for r in rows]),
                      "zero_motion": mean_scores([r["zero_motion"] for r in rows])}
    return out
