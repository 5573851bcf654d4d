"""KServe's Python client from Python: the venv scripts/client/kserve_venv.sh makes, and a client script run in it.

    from scripts.client.kserve_venv import KServeClientUnavailable, kserve_client_python, run_in_kserve_venv

    python = kserve_client_python()        # makes .venv-kserve-client on first use (about a minute)
    answer = run_in_kserve_venv("scripts/client/kserve_rest_check.py", "--url", url, "--image", path)

kserve (0.21.0) cannot share a venv with this service or with tritonclient.grpc (its psutil and
protobuf pins, kserve#3099), so its clients run as subprocesses that print one JSON object. Standard
library only: the tests and the podman checks import it from any interpreter.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from scripts import REPO_ROOT

VENV_SCRIPT = REPO_ROOT / "scripts" / "client" / "kserve_venv.sh"
INSTALL_TIMEOUT_S = 900


class KServeClientUnavailable(RuntimeError):
    """The client's venv could not be made (no network to pip's index, no venv module, ...)."""


def kserve_client_python(timeout: float = INSTALL_TIMEOUT_S) -> Path:
    """The python of KServe's client venv, made first when missing; raises KServeClientUnavailable
    with the script's own one-line reason when it cannot be made."""
    try:
        result = subprocess.run([str(VENV_SCRIPT)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise KServeClientUnavailable(f"{VENV_SCRIPT.name} did not finish within {timeout:.0f} s") from error
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        said = (result.stderr.strip().splitlines() or ["(nothing)"])[-1]
        raise KServeClientUnavailable(f"KServe's client venv could not be made "
                                      f"({VENV_SCRIPT.relative_to(REPO_ROOT)} exit {result.returncode}): {said}")
    return Path(lines[-1])


def run_in_kserve_venv(script: str | Path, *args: str, timeout: float = 300) -> tuple[int, dict]:
    """(exit code, the JSON object the script printed last) of a client script run in the venv."""
    result = subprocess.run([str(kserve_client_python()), str(REPO_ROOT / script), *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=timeout)
    answer = last_json_object(result.stdout)
    if answer is None:
        return result.returncode, {"error": "no JSON on stdout", "stdout": result.stdout[-2000:],
                                   "stderr": result.stderr[-2000:]}
    return result.returncode, answer


def last_json_object(stdout: str) -> dict | None:
    """The last JSON object a script printed, on one line or indented over many (a line that starts with
    "{" at column 0 opens one); None when there is none."""
    lines = stdout.splitlines()
    for start in reversed([i for i, line in enumerate(lines) if line.startswith("{")]):
        try:
            value, _ = json.JSONDecoder().raw_decode("\n".join(lines[start:]))
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
