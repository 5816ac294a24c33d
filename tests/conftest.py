"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def real_data_path() -> Path | None:
    """The real Home Depot ``train.csv.zip``: ``<repo>/data/home-depot/`` first, then
    ``<repo>/../shared/data/home-depot/``; None if neither exists."""
    for candidate in (REPO_ROOT / "data" / "home-depot" / "train.csv.zip",
                      REPO_ROOT.parent / "shared" / "data" / "home-depot" / "train.csv.zip"):
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture
def home_depot_path() -> Path:
    """Path of the real Home Depot file; skips the test when it is absent."""
    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    return path
