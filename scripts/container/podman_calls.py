"""What both host-side podman checks need: podman itself, a free loopback port, and one HTTP
call answered as (status, JSON). Standard library only: container_smoke runs with the host's
python3, before any venv exists."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from scripts.service.ports import free_loopback_port as free_port  # noqa: F401 - for both checks


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} ... exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace').strip()[-800:]}")
    return result


def http(method: str, url: str, body: bytes | None = None, content_type: str | None = None,
         timeout: float = 60) -> tuple[int, dict | None]:
    """(status, JSON body or None); 0 when nothing answered."""
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def write_report(report: dict, path: Path, summary: str) -> None:
    """The host's load at the end into ``report``, the report to ``path`` (JSON), ``summary`` to stdout."""
    report["host"]["load_avg_1m_at_end"] = os.getloadavg()[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(summary)
    print(f"report: {path}")
