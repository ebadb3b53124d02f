#!/usr/bin/env bash
# One-command setup for Sculptor on a fresh Debian machine with Python 3.11.
# Installs the system libraries the Python dependencies need, creates .venv,
# installs PyTorch (CPU wheel unless CUDA is present), the package in editable
# mode with test extras, and the offline 3D viewer library for the preview page.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# System libraries: open3d needs libusb-1.0-0 and libgomp1; rendering needs libgl1/libegl1.
DEB_PKGS="libusb-1.0-0 libgomp1 libgl1 libegl1 socat"
missing=""
for p in $DEB_PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing system packages:$missing"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# Headless Chromium is only needed for the browser test of the preview page.
if [ "${SCULPTOR_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing chromium (browser test of the preview page; SCULPTOR_SKIP_BROWSER=1 skips)"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver || echo "[setup] chromium not installed; the browser test will be skipped"
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip

# PyTorch first, pinned, so that no other package pulls a different build.
if ! $VPY -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0"
  $VPY -m pip install -q "torch==2.13.0"
fi

echo "[setup] installing sculptor (editable, with test extras)"
$VPY -m pip install -q -e ".[test]"

# three.js for the offline preview page: fetched from the npm registry at install time,
# inlined into each preview.html; never committed.
if command -v npm >/dev/null 2>&1; then
  if [ ! -f sim/web/node_modules/three/build/three.module.min.js ] && [ -f sim/web/package.json ]; then
    echo "[setup] installing three.js from npm for the preview page"
    (cd sim/web && npm install --no-audit --no-fund --silent) || echo "[setup] npm install failed; preview.html will fall back to a static view"
  fi
fi

$VPY -c "import sculptor, torch, open3d, trimesh, scipy, shapely, serial, pydantic; print('[setup] ok: sculptor', sculptor.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
echo "[setup] done. Activate with: source .venv/bin/activate"
