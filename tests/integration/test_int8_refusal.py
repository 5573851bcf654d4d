"""PRECISION=int8 on an fp32 archive: scripts/serve.sh (foreground and --detach) exits non-zero
with one line that names the fix, and starts, builds and writes nothing.

The archive is the session's own (model_store/resnet50.mar) when the suite has built it and it
holds no int8 model; otherwise an fp32 archive with random weights is built for this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scripts.archive.archive_info import read_archive_meta
from tests.integration.service import REPO_ROOT
from tests.support import free_ports

pytestmark = pytest.mark.integration

FIX = "python -m scripts.archive.build_mar --force --int8-calibration DIR"


@pytest.fixture(scope="module")
def fp32_store(tmp_path_factory) -> Path:
    session = REPO_ROOT / "model_store"
    meta = read_archive_meta(session / "resnet50.mar")
    if meta is not None and not meta.get("int8") and not (session / "resnet50.deployed.json").exists():
        return session
    store = tmp_path_factory.mktemp("fp32_store")
    built = subprocess.run([sys.executable, "-m", "scripts.archive.build_mar", "--weights", "random",
                            "--output-dir", str(store)], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=600, env={**os.environ, "ENV_FILE": str(store / "none.env"),
                                             "INT8_CALIBRATION_DIR": ""})
    assert built.returncode == 0, built.stderr[-2000:]
    assert not read_archive_meta(store / "resnet50.mar").get("int8")
    return store


def serve(store: Path, run_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """scripts/serve.sh as a user runs it, with PRECISION=int8 and nothing else set."""
    port = free_ports(1)[0]
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "VENV_DIR": sys.prefix, "ENV_FILE": str(run_dir.parent / "none.env"), "PORT": str(port),
           "BIND_ADDRESS": "127.0.0.1", "MODEL_STORE": str(store), "RUN_DIR": str(run_dir), "PRECISION": "int8"}
    result = subprocess.run([str(REPO_ROOT / "scripts" / "serve.sh"), *args], env=env, cwd="/",
                            capture_output=True, text=True, timeout=300)
    return result, port


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_started(store: Path, run_dir: Path, port: int, archive_digest: str) -> None:
    for name in ("service.pid", "service.log", "ports.json", "torchserve.pgid", "config", "tmp"):
        assert not (run_dir / name).exists(), name
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert digest(store / "resnet50.mar") == archive_digest  # neither rebuilt nor repacked


@pytest.mark.parametrize("mode", ["--detach", "foreground"])
def test_int8_on_an_fp32_archive_is_one_line_and_starts_nothing(fp32_store, tmp_path, mode):
    archive_digest = digest(fp32_store / "resnet50.mar")
    run_dir = tmp_path / "run"
    result, port = serve(fp32_store, run_dir, *([mode] if mode != "foreground" else []))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    line = lines[0]
    if mode == "foreground":  # the supervisor's own log line (JSON by default)
        entry = json.loads(line)
        assert entry["level"] == "CRITICAL" and entry["event"] == "int8_model_missing"
        line = entry["message"]
    assert "PRECISION=int8" in line and "int8 model" in line and FIX in line, line
    assert f"{fp32_store / 'resnet50.mar'} has none" in line
    assert_nothing_started(fp32_store, run_dir, port, archive_digest)
