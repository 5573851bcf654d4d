#!/usr/bin/env bash
# Build (if needed) and run the service on :${PORT:-5000}: TorchServe + nginx.
#   scripts/serve.sh            foreground; Ctrl-C / SIGTERM stops both cleanly
#   scripts/serve.sh --detach   background; returns once /health is 200
#   scripts/serve.sh --stop     stop a detached service
#   scripts/serve.sh --status   is it running and healthy?
# Settings: environment variables or a .env file (see .env.example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
  --stop|--status) ;;                      # no installation needed to stop or ask
  *) source scripts/bootstrap.sh runtime ;;
esac
PY="${VENV_DIR:-.venv}/bin/python"
[ -x "$PY" ] || PY=python3
exec "$PY" -m scripts.service.supervisor "$@"
