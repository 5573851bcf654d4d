#!/usr/bin/env bash
# Install everything (as serve.sh does, plus test tools) and run the whole pytest suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh test
python -m pytest "$@"
