"""The smallest input the model takes (tracker.model.input_size_problem), checked against the real layers.

The rule is derived from the encoder (its deepest instance norm, at stride 16, needs two pixels) and the feature
pyramid (stride 4, halved per correlation level, at least one pixel on the last level). Here the model's own check is
switched off and the real encoder, pyramid and update steps decide: the rule must agree with them at and around
every boundary, for 1 to 4 levels, both model kinds, square and elongated frames."""
from __future__ import annotations

import pytest
import torch

import tracker.model.base as model_base
from tracker.model import CoTracker3Offline, CoTracker3Online, input_size_problem

TINY = dict(hidden_size=32, num_heads=4, time_depth=1, space_depth=1, num_virtual_tracks=4, latent_dim=16,
            corr_radius=2, corr_hidden=32, corr_dim=16, encoder_dims=(8, 8, 16, 16), encoder_fuse_dim=16,
            model_resolution=(64, 64))


def _runs(model, height: int, width: int) -> bool:
    """Whether the real layers take (height, width) frames (one update iteration)."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, 4, 3, height, width), torch.tensor([[[0.0, 1.0, 1.0]]]), iters=1)
    except (ValueError, RuntimeError):  # instance norm: ValueError; pooling to an empty map: RuntimeError
        return False
    return True


def _boundary_sides(levels: int) -> list[int]:
    side = 4 * 2 ** (levels - 1)  # the pyramid's smallest side
    return sorted({4, max(side - 4, 4), side, 16, 20})  # 16 | 20: the encoder's boundary


@pytest.mark.parametrize("cls", [CoTracker3Offline, CoTracker3Online], ids=["offline", "online"])
@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_rule_matches_the_layers_at_the_boundaries(monkeypatch, cls, levels):
    torch.manual_seed(0)
    model = cls(window_len=4, corr_levels=levels, **TINY).eval()
    monkeypatch.setattr(model_base, "input_size_problem", lambda *args: None)  # let the layers decide
    sides = _boundary_sides(levels)
    verdicts = {(h, w): _runs(model, h, w) for h in sides for w in sides}
    wrong = {hw: ran for hw, ran in verdicts.items() if ran != (input_size_problem(*hw, levels) is None)}
    assert not wrong, f"rule disagrees with the layers (size: the layers ran): {wrong}"
    assert any(verdicts.values()) and not all(verdicts.values())  # the boundary is inside the sizes tried


def test_official_sizes_and_the_models_own_message():
    assert input_size_problem(384, 512) is None and input_size_problem(32, 32) is None
    assert "at least 32 for 4 correlation levels" in input_size_problem(8, 8)
    assert "one side must exceed 16" in input_size_problem(16, 16, corr_levels=1)
    assert "multiples of 4" in input_size_problem(30, 32)
    model = CoTracker3Online(window_len=8, corr_levels=3, **TINY).eval()
    with pytest.raises(ValueError, match=r"cannot take 8x8 frames: both sides must be at least 16") as err:
        model(torch.zeros(1, 8, 3, 8, 8), torch.tensor([[[0.0, 1.0, 1.0]]]), iters=1)
    assert "\n" not in str(err.value)
