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

ensure_peer_venv() {  # scripts/side_venv.sh: made once from the lock, reinstalled after a re-lock
  scripts/side_venv.sh "$PEER_VENV" requirements/locks/bench-kserve.txt 'import kserve, torch, torchvision' >/dev/null
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
