#!/usr/bin/env bash
# Installs everything the project needs on a Debian machine, idempotently.
#   bash scripts/install.sh           node (if missing) + npm packages
#   bash scripts/install.sh --test    also the Debian packages the test suite uses
# npm packages come from package-lock.json; ONNX Runtime's CPU build ships inside its
# npm package, and its install script (which downloads CUDA libraries) is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "install: missing Debian packages (run as root to install): ${missing[*]}" >&2
    return 1
  fi
  if [ $apt_updated -eq 0 ]; then apt-get update -qq; apt_updated=1; fi
  echo "install: apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "install: Node.js >= 20 is required (found $(node --version))" >&2
  exit 1
fi

if [ $with_test -eq 1 ]; then
  # Debian's python3 with PyTorch, numpy and Pillow: the reference implementation that
  # the parity tests compare the engine with, and PIL's resampler for image parity; redis-server
  # for the distributed task queue's tests (they start their own on a free port).
  apt_install python3 python3-numpy python3-pil python3-torch redis-server
  # The desktops the harness tests drive (Xvfb, apps, ffmpeg, ...).
  bash scripts/install-desktop.sh
fi

# npm packages: reinstall only when package-lock.json changed since the last install.
stamp=node_modules/.install-stamp
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi
