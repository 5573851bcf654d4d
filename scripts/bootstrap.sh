#!/usr/bin/env bash
# Sourced by serve.sh and test.sh: installs what the service needs, idempotently.
#  - as root on Debian/Ubuntu: nginx, a Java runtime and Python's venv via apt when missing, by the
#    package names this system has (Debian 12 and 13, Ubuntu 24.04);
#  - a virtual environment (VENV_DIR, default .venv) with the pinned requirements, made with Python
#    3.11-3.13 (PYTHON, else python3 when it is one of those, else python3.13/3.12/3.11), reinstalled
#    only when a requirements file changes (a hash stamp inside the venv).
# Usage: source scripts/bootstrap.sh [runtime|test|bench]

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"
PYTHON_RANGE=(3.11 3.13)   # what the pins install on (docs/development.md)
JAVA_MIN=17                # TorchServe 0.12's frontend

say() { printf 'bootstrap: %s\n' "$*" >&2; }

python_in_range() {
  "$1" -c "import sys; lo, hi = ((3, int(v.split('.')[1])) for v in sys.argv[1:]); sys.exit(not lo <= sys.version_info[:2] <= hi)" \
    "${PYTHON_RANGE[@]}" >/dev/null 2>&1
}

# The interpreter that makes the venv (PYTHON, checked before); empty when there is none in range (yet).
pick_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 && python_in_range "$candidate"; then echo "$candidate"; return 0; fi
  done
}

# The major version of `java` on PATH ("17.0.15" -> 17, "1.8.0_412" -> 1); empty without one.
java_major() {
  command -v java >/dev/null 2>&1 || return 0
  java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n 1
}

# The first of the given apt packages this system can install (apt's lists must be current).
installable() {
  local package
  for package in "$@"; do
    if apt-cache policy "$package" 2>/dev/null | grep -qE 'Candidate: [^(]'; then echo "$package"; return 0; fi
  done
  echo "$1"
}

ensure_system_packages() {
  local profile="$1" needs=() missing=() java
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || needs+=(nginx)
  java="$(java_major)"
  if [ -z "$java" ]; then
    needs+=(java)
  elif [ "$java" -lt "$JAVA_MIN" ]; then
    say "java on PATH is Java $java ($(command -v java)); TorchServe needs Java $JAVA_MIN or newer: install one" \
        "(Debian/Ubuntu: apt-get install default-jre-headless) and make it the default java"
    exit 1
  fi
  if [ -n "${PYTHON:-}" ] && ! python_in_range "$PYTHON"; then
    say "PYTHON=$PYTHON is not Python ${PYTHON_RANGE[0]}-${PYTHON_RANGE[1]}: unset it or name one of those"
    exit 1
  fi
  PYTHON="$(pick_python)"
  if [ -z "$PYTHON" ]; then
    # A finished environment needs no interpreter of the system's any more.
    [ -f "$VENV_DIR/.requirements-stamp" ] && [ -x "$VENV_DIR/bin/python" ] || needs+=(python)
  # venv/ensurepip are needed only to create the environment, not to use a finished one (its
  # stamp is written last); checking the stamp costs nothing at every start, pip would not.
  elif [ ! -f "$VENV_DIR/.requirements-stamp" ] && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    needs+=(venv)
  fi
  # The browser-page test drives Debian's Chromium (Playwright's own download needs the internet).
  if [ "$profile" = test ] && ! command -v chromium >/dev/null 2>&1; then needs+=(chromium); fi
  # The suite copies the checkout as git lists it (first-run tests) and runs the docs' curl examples
  # verbatim; a minimal Debian (a container's, a debootstrap minbase) has neither.
  if [ "$profile" = test ]; then
    command -v git >/dev/null 2>&1 || needs+=(git)
    command -v curl >/dev/null 2>&1 || needs+=(curl)
  fi
  # The benchmark's storm mode drives the service with Debian's compiled load generator.
  if [ "$profile" = bench ] && ! command -v hey >/dev/null 2>&1; then needs+=(hey); fi
  [ ${#needs[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${needs[*]} (and Python ${PYTHON_RANGE[0]}-${PYTHON_RANGE[1]} with venv, Java $JAVA_MIN+, nginx). Install them" \
        "(Debian/Ubuntu: sudo apt-get install nginx default-jre-headless python3-venv) and rerun."
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  local need
  for need in "${needs[@]}"; do
    case "$need" in
      # nginx-light (the smallest build with the modules config/nginx.conf.template uses) where the
      # system still has it, else nginx; the distribution's default Java (17 on Debian 12, 21 on 13).
      nginx) missing+=("$(installable nginx-light nginx)") ;;
      java) missing+=(default-jre-headless) ;;
      python) missing+=(python3 python3-venv) ;;
      venv) missing+=(python3-venv) ;;
      chromium | git | curl) missing+=("$need") ;;
      hey) missing+=(hey) ;;
    esac
  done
  say "installing ${missing[*]} with apt-get"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts a system nginx on :80; this project runs its own.
  if [ -f /run/nginx.pid ]; then
    nginx -s quit >/dev/null 2>&1 || true
  fi
  [ -n "$PYTHON" ] || PYTHON="$(pick_python)"
  if [ -z "$PYTHON" ]; then
    say "no Python ${PYTHON_RANGE[0]}-${PYTHON_RANGE[1]} after installing python3 (it is $(python3 --version 2>&1)):" \
        "install one of those and set PYTHON to it"
    exit 1
  fi
}

# An environment whose interpreter and pip both run. A first `python -m venv` stopped by Ctrl-C
# leaves bin/python without pip; such a half-made environment is made again, not patched.
venv_usable() {
  [ -x "$VENV_DIR/bin/python" ] && "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1
}

ensure_venv() {
  # Installs come from the hash-checked locks (requirements/locks/, made by scripts/lock.sh from
  # requirements/*.txt): every transitive package at the version and with the bytes that were locked.
  local profile="$1" lock=requirements/locks/runtime.txt stamps checker
  case "$profile" in
    test|bench) lock="requirements/locks/$profile.txt" ;;
  esac
  # A requirements/*.txt edited without re-locking would be silently ignored: say so (stdlib only, ~0.1 s).
  checker="$VENV_DIR/bin/python"; [ -x "$checker" ] || checker="${PYTHON:-python3}"
  if ! (cd "$REPO_ROOT" && "$checker" -m scripts.supply_chain.lock --check >/dev/null 2>&1); then
    say "requirements/locks/ are stale against requirements/*.txt: installing the locked versions;" \
        "run scripts/lock.sh to lock your change"
  fi
  # One stamp line per satisfied profile: a test or bench venv also satisfies "runtime" (their locks are
  # made with runtime's as a constraint, so every package they share has the same version).
  stamps="$(cd "$REPO_ROOT" && cat requirements/locks/pip.txt requirements/locks/runtime.txt | sha256sum | cut -c1-16)-runtime"
  [ "$profile" != runtime ] && stamps="$stamps"$'\n'"$(cd "$REPO_ROOT" && cat requirements/locks/pip.txt "$lock" | sha256sum | cut -c1-16)-$profile"
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
  local kept=""
  [ -f "$VENV_DIR/.requirements-stamp" ] && kept="$(cat "$VENV_DIR/.requirements-stamp")"
  rm -f "$VENV_DIR/.requirements-stamp"
  # pip first (the venv's bundled one is 23.x on Debian 12), from its own lock; then the profile's lock.
  # --require-hashes: a file whose sha256 is not in the lock is refused, from PyPI or from a local mirror.
  (cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
     -r requirements/locks/pip.txt >/dev/null)
  (cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$lock")
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
