"""Shared fixtures of the dataset tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"])


@pytest.fixture
def fixtures_dir() -> Path:
    """LeRobot-written datasets and checkpoints (../shared beside the checkout, also in CI)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"LeRobot fixtures not found at {FIXTURES}")
    return FIXTURES
