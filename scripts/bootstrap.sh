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
  # venv/ensurepip are needed only to create the environment, not to use a finished one (its
  # stamp is written last); checking the stamp costs nothing at every start, pip would not.
  if [ ! -f "$VENV_DIR/.requirements-stamp" ] && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
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

# An environment whose interpreter and pip both run. A first `python -m venv` stopped by Ctrl-C
# leaves bin/python without pip; such a half-made environment is made again, not patched.
venv_usable() {
  [ -x "$VENV_DIR/bin/python" ] && "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1
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
     && "$VENV_DIR/bin/python" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("torch", "torchvision", "ts", "openvino")))' >/dev/null 2>&1; then
    # (found, not imported: importing torch alone took 3 s of every start)
    return 0
  fi
  say "installing Python packages into $VENV_DIR (first run: a few minutes)"
  if ! venv_usable; then
    if [ -e "$VENV_DIR" ] && [ ! -f "$VENV_DIR/pyvenv.cfg" ] && [ -n "$(ls -A "$VENV_DIR" 2>/dev/null)" ]; then
      say "VENV_DIR=$VENV_DIR exists and is not a virtual environment: refusing to replace it"
      exit 1
    fi
    rm -rf "$VENV_DIR"
    "$PYTHON" -m venv "$VENV_DIR"
  fi
  # The stamp is written last: an install interrupted anywhere before it (Ctrl-C, a lost
  # connection) is simply run again next time, and pip keeps what was already complete.
  # Other profiles' lines (test, bench) stay valid: the profiles' pins are compatible.
  local kept=""
  [ -f "$VENV_DIR/.requirements-stamp" ] && kept="$(cat "$VENV_DIR/.requirements-stamp")"
  rm -f "$VENV_DIR/.requirements-stamp"
  "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  local args=()
  for file in "${files[@]}"; do args+=(-r "$file"); done
  (cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}")
  printf '%s\n%s\n' "$kept" "$stamps" | grep -v '^$' | sort -u >"$VENV_DIR/.requirements-stamp.tmp"
  mv "$VENV_DIR/.requirements-stamp.tmp" "$VENV_DIR/.requirements-stamp"
}

# Two first runs at once (two instances from one checkout) must not install into one
# environment together: the second waits for the first, then finds it ready.
with_venv_lock() {
  mkdir -p "$(dirname "$VENV_DIR")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV_DIR.lock"
    flock 9
    "$@"
    flock -u 9
    exec 9>&-
  else
    "$@"
  fi
}

bootstrap() {
  ensure_system_packages "${1:-runtime}"
  with_venv_lock ensure_venv "${1:-runtime}"
  export PATH="$VENV_DIR/bin:$PATH:/usr/sbin"
  export VIRTUAL_ENV="$VENV_DIR"
}

bootstrap "${1:-runtime}"
