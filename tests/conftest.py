"""Session-wide test set-up.

The LeRobot-written fixtures live in `shared/` beside the checkout (in CI too). Test modules
read their location from ROBOKIT_LEROBOT_FIXTURES, set here unless the caller set it.
"""

import os
from pathlib import Path

_beside_checkout = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "lerobot"
os.environ.setdefault("ROBOKIT_LEROBOT_FIXTURES", str(_beside_checkout))
