#!/usr/bin/env bash
# A virtual environment of its own, made once from one hash-checked lock, for a tool whose pins cannot
# live in .venv (KServe's packages pin psutil<6 and protobuf<7, and kserve cannot be imported beside
# tritonclient.grpc, kserve#3099). Prints the environment's python on stdout:
#
#   scripts/side_venv.sh VENV_DIR LOCK 'import probe'      # e.g. .venv-kserve-client requirements/locks/kserve-client.txt
#
# The stamp (a hash of requirements/locks/pip.txt and LOCK) is written last, so an interrupted install is
# redone and a re-lock reinstalls; a lock file keeps two first runs from installing at once. The
# interpreter is PYTHON, else python3 (the locks hold for Python 3.11-3.13). Exit 1 with one line on
# stderr when it cannot be made (no venv module, pip's index unreachable, the probe fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -eq 3 ] || { echo "usage: scripts/side_venv.sh VENV_DIR LOCK 'python probe'" >&2; exit 2; }
VENV="$1" LOCK="$2" PROBE="$3"
case "$LOCK" in  # only a hash-checked lock, never a plain requirements file
  requirements/locks/*.txt) ;;
  *) echo "side_venv: LOCK must be a file of requirements/locks/, got $LOCK" >&2; exit 2 ;;
esac
say() { printf 'side_venv: %s\n' "$*" >&2; }

wanted="$(cat requirements/locks/pip.txt "$LOCK" | sha256sum | cut -c1-16)"
ready() {
  [ -f "$VENV/.requirements-stamp" ] && [ "$(cat "$VENV/.requirements-stamp")" = "$wanted" ] \
    && "$VENV/bin/python" -c "$PROBE" >/dev/null 2>&1
}
if ready; then echo "$VENV/bin/python"; exit 0; fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if ready; then echo "$VENV/bin/python"; exit 0; fi  # made by another run while this one waited

python="${PYTHON:-python3}"
say "installing $LOCK into $VENV (a minute or a few, the first time)"
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
rm -f "$VENV/.requirements-stamp"
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
     -r requirements/locks/pip.txt -r "$LOCK" >&2; then
  say "pip could not install $LOCK (is pip's index reachable?)"
  exit 1
fi
if ! "$VENV/bin/python" -c "$PROBE" >&2; then
  say "$LOCK was installed but '$PROBE' fails (see above)"
  exit 1
fi
echo "$wanted" >"$VENV/.requirements-stamp"
echo "$VENV/bin/python"
