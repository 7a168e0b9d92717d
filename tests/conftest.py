"""Session-wide test set-up.

The LeRobot-written fixtures live in `shared/` beside the checkout (in CI too). Test modules
read their location from ROBOKIT_LEROBOT_FIXTURES, set here unless the caller set it.

A checkout cloned on its own has no `../shared`: every test that reads those fixtures must skip,
saying why, rather than fail. Mark such a test (or a module, with `pytestmark`) with
`@pytest.mark.lerobot_fixtures`, or take the `lerobot_fixtures` fixture (the folder's path);
both skip here, in one place, when the folder is missing.
"""

import os
from pathlib import Path

import pytest

_beside_checkout = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "lerobot"
os.environ.setdefault("ROBOKIT_LEROBOT_FIXTURES", str(_beside_checkout))
LEROBOT_FIXTURES = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"])
MISSING_FIXTURES = (
    f"the LeRobot fixtures are not at {LEROBOT_FIXTURES} (../shared/fixtures/lerobot beside the checkout; "
    "set ROBOKIT_LEROBOT_FIXTURES to point elsewhere)"
)


def pytest_configure(config):
    config.addinivalue_line("markers", "lerobot_fixtures: reads the LeRobot-written fixtures; skipped when they are absent")


def pytest_runtest_setup(item):
    if item.get_closest_marker("lerobot_fixtures") is not None and not LEROBOT_FIXTURES.is_dir():
        pytest.skip(MISSING_FIXTURES)


@pytest.fixture(scope="session")
def lerobot_fixtures() -> Path:
    """The LeRobot-written datasets and checkpoints; skips the test when they are absent."""
    if not LEROBOT_FIXTURES.is_dir():
        pytest.skip(MISSING_FIXTURES)
    return LEROBOT_FIXTURES
