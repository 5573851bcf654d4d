#!/usr/bin/env bash
# Install the benchmark extras (plot, progress bar, captum for the stock baseline) and run
# scripts/benchmark.py; arguments go to it. Example: scripts/benchmark.sh --start --stock
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh bench
exec python scripts/benchmark.py "$@"
