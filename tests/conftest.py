"""Shared pytest fixtures: the location of ../shared (fixtures, spec, demo clips)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("TRACKFORGE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder; tests that need it skip with a clear message when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared material not found at {SHARED_DIR} (set TRACKFORGE_SHARED to its path)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def cotracker3_fixtures(shared_dir: Path) -> Path:
    """../shared/fixtures/cotracker3: official reference weights, inputs and outputs."""
    path = shared_dir / "fixtures" / "cotracker3"
    if not path.is_dir():
        pytest.skip(f"CoTracker3 fixtures not found at {path}")
    return path
