#!/usr/bin/env bash
# Make (once) the virtual environment of KServe's Python client and print its python's path:
#
#   scripts/client/kserve_venv.sh                 # -> /path/to/.venv-kserve-client/bin/python
#   "$(scripts/client/kserve_venv.sh)" scripts/client/kserve_grpc_check.py --url HOST:PORT ...
#
# kserve==0.21.0 (requirements/kserve-client.txt, locked in requirements/locks/kserve-client.txt; no torch)
# in a venv of its own (scripts/side_venv.sh says why).  KSERVE_CLIENT_VENV=DIR: where (default
# .venv-kserve-client in the checkout).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec scripts/side_venv.sh "${KSERVE_CLIENT_VENV:-$PWD/.venv-kserve-client}" requirements/locks/kserve-client.txt \
  'from kserve import InferenceRESTClient, InferenceGRPCClient, RESTConfig'
