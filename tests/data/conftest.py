"""Shared fixtures of the dataset tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "lerobot"


@pytest.fixture
def fixtures_dir() -> Path:
    """LeRobot-written datasets and checkpoints (../shared beside the checkout, also in CI)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"LeRobot fixtures not found at {FIXTURES}")
    return FIXTURES
