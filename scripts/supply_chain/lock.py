#!/usr/bin/env python3
"""Re-lock every requirements set with hashes, then audit the locks: the one command is scripts/lock.sh.

    python -m scripts.supply_chain.lock                 # re-lock all sets (lock_sets.LOCK_SETS), then audit
    python -m scripts.supply_chain.lock --upgrade       # also move unpinned transitive packages to their newest
    python -m scripts.supply_chain.lock --no-audit      # locks only (the audit needs PyPI's advisory data)
    python -m scripts.supply_chain.lock --check         # offline: exit 1 naming stale locks or unhashed lines

uv runs from a venv of its own, build/lock-tools-venv, installed from requirements/locks/lock-tools.txt with
--require-hashes. An existing lock is uv's starting point: re-locking after a new pin moves nothing else.
Arguments after --audit-args go to scripts.supply_chain.audit (e.g. --advisory-db DIR).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

from scripts import REPO_ROOT
from scripts.supply_chain.lock_sets import (BY_NAME, LOCK_SETS, UV_COMPILE_OPTIONS, header, inputs_digest,
                                            parse_lock, stale_locks)

TOOLS_VENV = REPO_ROOT / "build" / "lock-tools-venv"
TOOL_LOCKS = (BY_NAME["pip"].lock, BY_NAME["lock-tools"].lock)


def say(message: str) -> None:
    print(f"lock: {message}", file=sys.stderr, flush=True)


def tools_python() -> Path:
    """build/lock-tools-venv's python with uv and pip-audit from their hashed lock (made once per lock change)."""
    python = TOOLS_VENV / "bin" / "python"
    wanted = hashlib.sha256(b"".join((REPO_ROOT / lock).read_bytes() for lock in TOOL_LOCKS
                                     if (REPO_ROOT / lock).exists())).hexdigest()
    stamp = TOOLS_VENV / ".lock-stamp"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    say(f"installing uv and pip-audit into {TOOLS_VENV.relative_to(REPO_ROOT)}")
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS_VENV)
    stamp.unlink(missing_ok=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if all((REPO_ROOT / lock).exists() for lock in TOOL_LOCKS):
        for lock in TOOL_LOCKS:
            subprocess.run([*pip, "--require-hashes", "-r", lock], cwd=REPO_ROOT, check=True)
    else:  # the very first lock: nothing hashed to install from yet
        say("no tool lock yet: installing the pins of requirements/lock-tools.txt without hashes, once")
        subprocess.run([*pip, "-r", "requirements/lock-tools.txt"], cwd=REPO_ROOT, check=True)
    stamp.write_text(wanted + "\n")
    return python


def compile_set(uv: Path, name: str, upgrade: bool) -> None:
    lock_set = BY_NAME[name]
    lock = REPO_ROOT / lock_set.lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    command = [str(uv), "pip", "compile", *UV_COMPILE_OPTIONS, "--quiet", *lock_set.inputs, "-o", lock_set.lock]
    for earlier in lock_set.pinned_by:
        command += ["-c", BY_NAME[earlier].lock]
    if upgrade:
        command.append("--upgrade")
    # uv reads no pip configuration: the locks come from PyPI, whatever local mirrors pip is given.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
    subprocess.run(command, cwd=REPO_ROOT, check=True, env=environment)
    body = lock.read_text(encoding="utf-8")
    lock.write_text(header(lock_set, inputs_digest(REPO_ROOT, lock_set)) + body, encoding="utf-8")
    say(f"{lock_set.lock}: {len(parse_lock(body)[0])} packages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale locks and unhashed lines (offline)")
    parser.add_argument("--upgrade", action="store_true", help="let every unpinned package move to its newest")
    parser.add_argument("--no-audit", action="store_true", help="skip the vulnerability audit")
    parser.add_argument("--audit-args", nargs=argparse.REMAINDER, default=[],
                        help="arguments for python -m scripts.supply_chain.audit")
    args = parser.parse_args(argv)

    if args.check:
        problems = stale_locks(REPO_ROOT)
        for problem in problems:
            print(problem)
        if problems:
            print("rerun scripts/lock.sh", file=sys.stderr)
        return 1 if problems else 0

    python = tools_python()
    uv = python.parent / "uv"
    for lock_set in LOCK_SETS:
        compile_set(uv, lock_set.name, args.upgrade)
    python = tools_python()  # the tool lock itself may have moved
    problems = stale_locks(REPO_ROOT)
    if problems:
        for problem in problems:
            say(problem)
        return 1
    if args.no_audit:
        say("locks written; audit skipped (--no-audit): requirements/locks/audit.json is now stale")
        return 0
    return subprocess.run([str(python), "-m", "scripts.supply_chain.audit", *args.audit_args], cwd=REPO_ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
