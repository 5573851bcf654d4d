#!/usr/bin/env bash
# Install the benchmark extras (plot, progress bar, captum for the stock baseline) and run
# scripts/bench/benchmark.py; arguments go to it. Example: scripts/bench/benchmark.sh --start --stock
#
# With --peer kserve it also makes the peer's own environment, .venv-bench-kserve (no system
# site-packages; requirements/bench-kserve.txt): kserve pins packages the service pins
# differently, so it never goes into .venv. `scripts/bench/benchmark.sh --prepare-peer` only makes
# that environment and exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PEER_VENV="${PEER_VENV:-$PWD/.venv-bench-kserve}"
PEER_REQUIREMENTS=requirements/bench-kserve.txt

ensure_peer_venv() {
  local python="${PYTHON:-python3.11}" wanted
  command -v "$python" >/dev/null 2>&1 || python=python3
  wanted="$(sha256sum "$PEER_REQUIREMENTS" | cut -c1-16)"
  if [ -f "$PEER_VENV/.requirements-stamp" ] && [ "$(cat "$PEER_VENV/.requirements-stamp")" = "$wanted" ] \
     && "$PEER_VENV/bin/python" -c 'import kserve, torch, torchvision' >/dev/null 2>&1; then
    return 0
  fi
  echo "benchmark: installing the KServe peer into $PEER_VENV (a few minutes the first time)" >&2
  if ! "$PEER_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    if [ -e "$PEER_VENV" ] && [ ! -f "$PEER_VENV/pyvenv.cfg" ]; then
      echo "benchmark: $PEER_VENV exists and is not a virtual environment: refusing to replace it" >&2
      exit 1
    fi
    rm -rf "$PEER_VENV"
    "$python" -m venv "$PEER_VENV"
  fi
  rm -f "$PEER_VENV/.requirements-stamp"   # written last: an interrupted install is simply redone
  "$PEER_VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements/locks/pip.txt -r requirements/locks/bench-kserve.txt
  echo "$wanted" >"$PEER_VENV/.requirements-stamp"
}

wants_peer=0
prepare_only=0
previous=""
for argument in "$@"; do
  case "$argument" in
    --peer=kserve) wants_peer=1 ;;
    --prepare-peer) wants_peer=1; prepare_only=1 ;;
    kserve) [ "$previous" = --peer ] && wants_peer=1 ;;
  esac
  previous="$argument"
done
if [ "$wants_peer" = 1 ]; then
  ensure_peer_venv
  [ "$prepare_only" = 1 ] && exit 0
fi

source scripts/bootstrap.sh bench
exec python -m scripts.bench.benchmark "$@"
