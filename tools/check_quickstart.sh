#!/usr/bin/env bash
# The README's quick start as a stranger meets it: a copy of this working tree (tracked and
# untracked-but-not-ignored files: what a clone of it would hold, no .venv), Debian's own python3
# first on the PATH (PEP 668: it refuses pip installs), no /sbin on the PATH, an empty HOME:
#   env -i PATH=/usr/bin:/bin HOME=<empty> make install / make demo / make test
# It fails if any step installs outside the project environment, needs a tool from the caller's
# PATH, or stops.
#
# Reuse (default): the new environment is made with `python3 -m venv` like tools/setup.sh does,
# then sees this checkout's installed packages through a .pth file, so pip resolves the whole
# lock but downloads nothing (no torch re-install per CI run). QUICKSTART_FULL=1 installs
# everything afresh (minutes, gigabytes: what a new machine really does).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say() { echo "[quickstart] $*"; }

say "copying the working tree to $tmp/vidssl"
mkdir -p "$tmp/vidssl" "$tmp/home"
git -C "$repo" ls-files -z --cached --others --exclude-standard \
  | (cd "$repo" && tar --null -T - -cf -) | tar -xf - -C "$tmp/vidssl"
cd "$tmp/vidssl"

base_python=/usr/bin/python3
[ -x "$base_python" ] || { say "no /usr/bin/python3 on this machine"; exit 1; }
stranger=(env -i PATH=/usr/bin:/bin HOME="$tmp/home" LANG=C.UTF-8)
if [ "${QUICKSTART_FULL:-0}" != 1 ]; then
  donor="$repo/.venv"
  same_minor() { [ "$("$1" -c 'import sys; print(sys.version_info[:2])')" = "$("$2" -c 'import sys; print(sys.version_info[:2])')" ]; }
  if [ -x "$donor/bin/python" ] && same_minor "$donor/bin/python" "$base_python"; then
    say "making .venv with $base_python and lending it $donor's packages (no downloads)"
    "${stranger[@]}" "$base_python" -m venv .venv
    donor_site="$("$donor/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$donor_site" > "$site/_quickstart_donor.pth"
  else
    say "no reusable environment for $($base_python -V) at $donor: full install"
  fi
fi

say "make install"
"${stranger[@]}" make install
say "make demo DEMO_ARGS='--loader-only --quiet' (dataset, index, loader; the full demo takes ~13 min)"
"${stranger[@]}" make demo DEMO_ARGS="--loader-only --quiet"
say "make test PYTEST_ARGS='-q tests/test_cli.py'"
"${stranger[@]}" make test PYTEST_ARGS="-q -p no:cacheprovider tests/test_cli.py"
say "ok: the quick start works with $($base_python -V) first on the PATH"
