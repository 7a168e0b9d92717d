"""Shared helpers for the simulation tests: skip only when an optional sim package is absent."""

from __future__ import annotations

import importlib.util

import pytest

from robokit.errors import install_hint

SMALL = (48, 64)
"""Image size used by the tests: rendering cost grows with pixels."""


def require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"optional simulation package(s) {missing} not installed ({install_hint('sim')})")


@pytest.fixture
def need_aloha():
    require("gym_aloha", "dm_control", "mujoco")


@pytest.fixture
def need_pusht():
    require("gym_pusht", "pymunk", "pygame", "shapely")


@pytest.fixture
def need_metaworld():
    require("metaworld", "mujoco")
