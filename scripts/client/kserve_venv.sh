#!/usr/bin/env bash
# Make (once) the virtual environment of KServe's Python client and print its python's path:
#
#   scripts/client/kserve_venv.sh                 # -> /path/to/.venv-kserve-client/bin/python
#   "$(scripts/client/kserve_venv.sh)" my_client_script.py
#
# requirements/kserve-client.txt (kserve==0.21.0, no torch) goes into a venv of its own, never into
# .venv: kserve pins psutil<6 and protobuf<7, which the service's own pins contradict, and its
# protobuf cannot live beside tritonclient.grpc's (kserve#3099). Modelled on ensure_peer_venv in
# scripts/bench/benchmark.sh: a stamp of the requirements' hash is written last, so an interrupted
# install is redone; a lock keeps two first runs (two test sessions) from installing at once.
#
#   KSERVE_CLIENT_VENV=DIR   where the venv lives (default: .venv-kserve-client in the checkout)
#   PYTHON=python3.x         the interpreter that makes it (default python3.11, else python3)
#
# Exit 0 with the path on stdout; exit 1 with one line on stderr saying why it could not be made
# (no network to pip's index, no venv module, ...). Messages go to stderr only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VENV="${KSERVE_CLIENT_VENV:-$PWD/.venv-kserve-client}"
REQUIREMENTS=requirements/kserve-client.txt
# What the callers import: the REST client (v1 and v2) and the gRPC client.
PROBE='from kserve import InferenceRESTClient, InferenceGRPCClient, RESTConfig'

say() { printf 'kserve_venv: %s\n' "$*" >&2; }

ready() {
  [ -f "$VENV/.requirements-stamp" ] && [ "$(cat "$VENV/.requirements-stamp")" = "$wanted" ] \
    && "$VENV/bin/python" -c "$PROBE" >/dev/null 2>&1
}

wanted="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
if ready; then
  echo "$VENV/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if ready; then  # made by another run while this one waited for the lock
  echo "$VENV/bin/python"
  exit 0
fi

python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
say "installing KServe's client into $VENV (about a minute the first time)"
if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    say "$VENV exists and is not a virtual environment: refusing to replace it"
    exit 1
  fi
  rm -rf "$VENV"
  if ! "$python" -m venv "$VENV" >&2; then
    say "could not create a venv with $python (Debian: apt-get install python3-venv)"
    exit 1
  fi
fi
rm -f "$VENV/.requirements-stamp"  # written last: an interrupted install is simply redone
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements/locks/pip.txt -r requirements/locks/kserve-client.txt >&2; then
  say "pip could not install $REQUIREMENTS (is pip's index reachable?)"
  exit 1
fi
if ! "$VENV/bin/python" -c "$PROBE" >&2; then
  say "kserve was installed but its client does not import (see above)"
  exit 1
fi
echo "$wanted" >"$VENV/.requirements-stamp"
echo "$VENV/bin/python"
