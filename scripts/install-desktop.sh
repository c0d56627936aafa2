#!/usr/bin/env bash
# Installs the Debian packages the local desktop envs need (harness/env/providers/local).
# Idempotent: `apt-get update` and `apt-get install` run only when a package is missing.
# Usage: scripts/install-desktop.sh [--minimal]   (--minimal: core X tools + LibreOffice + Chromium, no GIMP/VLC/Thunderbird)
# Must run as root (or with sudo available).
set -euo pipefail

MINIMAL=0
for a in "$@"; do
  case "$a" in
    --minimal) MINIMAL=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

CORE=(
  xvfb openbox xdotool x11-utils x11-apps x11-xserver-utils scrot imagemagick ffmpeg wmctrl xclip
  dbus-x11 at-spi2-core python3-pyatspi python3-xlib python3-pil python3-openpyxl python3-docx python3-lxml
  xterm fonts-dejavu fonts-liberation sqlite3
)
APPS=(
  libreoffice-calc libreoffice-writer libreoffice-impress libreoffice-gtk3 python3-uno
  chromium mousepad
)
EXTRA=(gimp vlc thunderbird)
OPTIONAL=(fonts-noto-cjk)   # installed when available, failure tolerated

WANT=("${CORE[@]}" "${APPS[@]}")
[ "$MINIMAL" = 1 ] || WANT+=("${EXTRA[@]}")

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "install-desktop.sh: needs root" >&2; exit 1; fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

MISSING=()
for p in "${WANT[@]}"; do installed "$p" || MISSING+=("$p"); done
OPT_MISSING=()
for p in "${OPTIONAL[@]}"; do installed "$p" || OPT_MISSING+=("$p"); done

if [ "${#MISSING[@]}" = 0 ] && [ "${#OPT_MISSING[@]}" = 0 ]; then
  echo "install-desktop.sh: all ${#WANT[@]} packages already installed, nothing to do"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-desktop.sh: apt-get update"
$SUDO apt-get update -qq
if [ "${#MISSING[@]}" -gt 0 ]; then
  echo "install-desktop.sh: installing ${#MISSING[@]} packages: ${MISSING[*]}"
  $SUDO apt-get install -y -q --no-install-recommends "${MISSING[@]}"
fi
for p in "${OPT_MISSING[@]}"; do
  echo "install-desktop.sh: installing optional $p"
  $SUDO apt-get install -y -q --no-install-recommends "$p" || echo "install-desktop.sh: optional $p not installed (ignored)"
done

FAILED=()
for p in "${WANT[@]}"; do installed "$p" || FAILED+=("$p"); done
if [ "${#FAILED[@]}" -gt 0 ]; then echo "install-desktop.sh: still missing: ${FAILED[*]}" >&2; exit 1; fi
echo "install-desktop.sh: done (${#WANT[@]} packages present)"
