#!/usr/bin/env bash
# Re-lock every requirements set with hashes (requirements/locks/), then audit the locks:
#   scripts/lock.sh                        # after changing any requirements/*.txt
#   scripts/lock.sh --upgrade              # also move unpinned transitive packages to their newest
#   scripts/lock.sh --check                # offline: are the locks fresh and fully hashed?
#   scripts/lock.sh --audit-args --advisory-db DIR   # audit against a local PyPA advisory database
#                                    (build/advisory-database is used by default when it exists)
# Needs Python 3.11+ and PyPI; see python -m scripts.supply_chain.lock --help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-python3}"
exec "$python" -m scripts.supply_chain.lock "$@"
