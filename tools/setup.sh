#!/usr/bin/env bash
# Set up vidssl on a fresh Debian/Ubuntu machine, the way the README's `make demo` needs it:
#   1. system packages: FFmpeg (shared libraries for torchcodec, the CLI for the decoding tests)
#      and python3-venv, installed with apt (through sudo when not root) only when missing;
#   2. a project virtual environment (VENV, default .venv): Debian 12 / Ubuntu 23.04+ mark the
#      system Python as externally managed (PEP 668), so nothing is ever pip-installed outside it;
#   3. vidssl, editable, with its test and benchmark extras, at the versions of
#      requirements/lock.txt (the set the test suite is run with).
# Idempotent and fast when everything is there: step 3 is skipped while the environment's
# stamp matches pyproject.toml, setup.py, the lock and this script.
#
# Environment: PYTHON  interpreter the environment is made from (default python3, >= 3.10)
#              VENV    where the environment lives (default .venv in the repository)
#              EXTRAS  extras to install (default dev,bench)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-dev,bench}"
LOCK="requirements/lock.txt"
say() { echo "[setup] $*"; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# ------------------------------------------------------------------ system packages
# ldconfig lives in /sbin, which a plain user's PATH (or `env -i PATH=/usr/bin:/bin`) lacks.
ldconfig_bin() { command -v ldconfig || { [ -x /sbin/ldconfig ] && echo /sbin/ldconfig; } || echo /usr/sbin/ldconfig; }
# grep without -q reads the whole list: with pipefail, `grep -q` quitting at the first match can
# end ldconfig with SIGPIPE, and the check would then fail although FFmpeg is there.
have_ffmpeg() { "$(ldconfig_bin)" -p 2>/dev/null | grep 'libavcodec\.so' >/dev/null && command -v ffmpeg >/dev/null; }
venv_works() { # a throwaway environment with pip: what python3-venv (ensurepip) provides
  local probe; probe="$(mktemp -d)"
  "$PYTHON" -m venv "$probe/env" >/dev/null 2>&1 && "$probe/env/bin/python" -m pip --version >/dev/null 2>&1
  local rc=$?; rm -rf "$probe"; return $rc
}
apt_install() {
  command -v apt-get >/dev/null || die "missing system packages ($*) and no apt-get here: install them with your package manager, then re-run"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing system packages ($*): run as root, or install sudo, or install them yourself"
    sudo="sudo"
  fi
  say "installing system packages: $* (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH (set PYTHON=/path/to/python3.10+)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$("$PYTHON" -V 2>&1) is too old: vidssl needs Python >= 3.10 (set PYTHON=...)"

missing=()
have_ffmpeg || missing+=(ffmpeg)
if [ ! -x "$VENV/bin/python" ] && ! venv_works; then
  # Debian splits venv/ensurepip out of python3; the versioned package matches the interpreter
  ver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  missing+=(python3-venv "python${ver}-venv")
fi
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
have_ffmpeg || die "FFmpeg's shared libraries or CLI are still missing after installing ffmpeg"

# ------------------------------------------------------------------ the environment
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  say "creating the virtual environment $VENV ($("$PYTHON" -V 2>&1))"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv $VENV' failed (is python3-venv installed?)"
fi
VPY="$VENV/bin/python"

stamp="$VENV/.vidssl-setup"
want="$(cat pyproject.toml setup.py "$LOCK" "$0" | sha256sum | cut -d' ' -f1) $EXTRAS $(pwd)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$VPY" -c 'import vidssl, torch, torchcodec' 2>/dev/null; then
  say "ok: $VENV is up to date ($("$VPY" -c 'import torch; print("torch", torch.__version__)'))"
  touch "$stamp"  # for make: newer than its prerequisites again
  exit 0
fi

say "installing vidssl[$EXTRAS] into $VENV with the tested versions ($LOCK)"
"$VPY" -m pip install -q --disable-pip-version-check -c "$LOCK" -e ".[$EXTRAS]"
"$VPY" - <<'PY'
import torch, torchvision, torchcodec
from torchcodec.decoders import VideoDecoder  # fails here, not in a test, if FFmpeg is broken
print(f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"torchcodec {torchcodec.__version__}")
PY
echo "$want" > "$stamp"
