#!/usr/bin/env bash
# Install what vidssl needs on a fresh Debian/Ubuntu machine: FFmpeg's shared libraries (for
# torchcodec) and the package itself (editable) with its test and benchmark extras.
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

have_ffmpeg_libs() { ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so'; }
if ! have_ffmpeg_libs; then
  echo "[setup] installing FFmpeg shared libraries (apt-get install ffmpeg)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

PYTHON="${PYTHON:-python3}"
echo "[setup] pip install -e .[dev,bench]"
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[dev,bench]"
"$PYTHON" - <<'PY'
import torch, torchvision, torchcodec
from torchcodec.decoders import VideoDecoder  # fails here, not in a test, if FFmpeg is broken
print(f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"torchcodec {torchcodec.__version__}")
PY
