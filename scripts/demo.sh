#!/usr/bin/env bash
# Set up (idempotent), then run robokit's main job on its embedded default: no hardware, no downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/robokit demo "$@"
