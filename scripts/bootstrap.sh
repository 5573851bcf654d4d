#!/usr/bin/env bash
# Sourced by serve.sh and test.sh: installs what the service needs, idempotently.
#  - as root on Debian/Ubuntu: nginx and a Java runtime via apt when missing;
#  - a virtual environment (VENV_DIR, default .venv) with the pinned requirements,
#    reinstalled only when a requirements file changes (a hash stamp inside the venv).
# Usage: source scripts/bootstrap.sh [runtime|test|bench]

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

say() { printf 'bootstrap: %s\n' "$*" >&2; }

ensure_system_packages() {
  local profile="$1" missing=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  # The browser-page test drives Debian's Chromium (Playwright's own download needs the internet).
  if [ "$profile" = test ] && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${missing[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and rerun."
    exit 1
  fi
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts a system nginx on :80; this project runs its own.
  if pgrep -x nginx >/dev/null 2>&1 && [ -f /run/nginx.pid ]; then
    nginx -s quit >/dev/null 2>&1 || true
  fi
}

ensure_venv() {
  local profile="$1" files=(requirements/torch.txt requirements/runtime.txt) stamps
  case "$profile" in
    test|bench) files+=("requirements/$profile.txt") ;;
  esac
  # One stamp line per satisfied profile: a test or bench venv also satisfies "runtime".
  stamps="$(cd "$REPO_ROOT" && cat requirements/torch.txt requirements/runtime.txt | sha256sum | cut -c1-16)-runtime"
  [ "$profile" != runtime ] && stamps="$stamps"$'\n'"$(cd "$REPO_ROOT" && cat "${files[@]}" | sha256sum | cut -c1-16)-$profile"
  local wanted="${stamps##*$'\n'}"
  if [ -f "$VENV_DIR/.requirements-stamp" ] && grep -qxF "$wanted" "$VENV_DIR/.requirements-stamp" \
     && "$VENV_DIR/bin/python" -c 'import torch, torchvision, ts' >/dev/null 2>&1; then
    return 0
  fi
  say "installing Python packages into $VENV_DIR (first run: a few minutes)"
  [ -x "$VENV_DIR/bin/python" ] || "$PYTHON" -m venv "$VENV_DIR"
  "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  (cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check \
      $(printf -- '-r %s ' "${files[@]}"))
  echo "$stamps" >"$VENV_DIR/.requirements-stamp"
}

bootstrap() {
  ensure_system_packages "${1:-runtime}"
  ensure_venv "${1:-runtime}"
  export PATH="$VENV_DIR/bin:$PATH:/usr/sbin"
  export VIRTUAL_ENV="$VENV_DIR"
}

bootstrap "${1:-runtime}"
