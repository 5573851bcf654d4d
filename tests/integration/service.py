"""Start and stop the real service (scripts/serve.sh) on free loopback ports for tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from handler.settings_table import BY_NAME
from scripts import REPO_ROOT
from tests.support import free_ports, wait_until

# The suite's own model store, outside model_store/ (a user's archive there, built online with real
# weights or from their own checkpoint, is never what the tests run against or overwrite). Its archive
# is built deliberately from the seeded random initialisation (MODEL_WEIGHTS=random), so the suite knows
# its model whether or not this machine can download torchvision's weights; kept across runs and
# repacked by the supervisor when handler/ changes. tests/integration/test_pretrained_weights.py covers
# the pretrained path.
SUITE_STORE = REPO_ROOT / ".run" / "test-model-store"
SUITE_ARCHIVE_ENV = {"MODEL_WEIGHTS": "random"}
DEFAULT_TOP_K = BY_NAME["DEFAULT_TOP_K"].parse()
MAX_FILE_SIZE = BY_NAME["MAX_FILE_SIZE"].parse()


def service_env(run_dir: Path, model_store: Path, extra_env: dict[str, str | None] | None) -> dict[str, str]:
    """The environment of one test instance: free loopback ports, its own RUN_DIR, no .env."""
    port, inference, management, metrics, grpc_inference, grpc_management, grpc = free_ports(7)
    env = dict(os.environ)
    env.update({
        "PORT": str(port), "GRPC_PORT": str(grpc), "BIND_ADDRESS": "127.0.0.1", "TS_INFERENCE_PORT": str(inference),
        "TS_MANAGEMENT_PORT": str(management), "TS_METRICS_PORT": str(metrics),
        "TS_GRPC_INFERENCE_PORT": str(grpc_inference), "TS_GRPC_MANAGEMENT_PORT": str(grpc_management),
        "RUN_DIR": str(run_dir), "MODEL_STORE": str(model_store), "MODEL_NAME": "resnet50",
        "ENV_FILE": str(run_dir / "no.env"), "STARTUP_TIMEOUT": "300",
    })
    for key, value in (extra_env or {}).items():  # None: leave the setting unset (its default)
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def copy_checkout(target: Path) -> Path:
    """The working tree as a fresh clone would hold it (tracked and new, unignored files), plus
    the suite's archive in its model_store/, so the copy does not build one (it would if absent)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO_ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    for archive in SUITE_STORE.glob("*.mar"):
        shutil.copy2(archive, target / "model_store" / archive.name)
    return target


def raw_http(base_url: str, request: bytes) -> tuple[int, bytes, bytes]:
    """Send bytes that requests would refuse to (bad headers, smuggling); return status, head, body."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


@dataclass
class RunningService:
    env: dict[str, str]
    base_url: str
    run_dir: Path
    model_store: Path
    startup_s: float = 0.0
    health_before_ready: list[tuple[int, dict]] = field(default_factory=list)
    startup_output: str = ""  # what `serve.sh --detach` printed

    @property
    def archive(self) -> Path:
        return self.model_store / f"{self.env['MODEL_NAME']}.mar"

    def url(self, path: str) -> str:
        return self.base_url + path

    def read_archive(self, name: str) -> bytes:
        with zipfile.ZipFile(self.archive) as archive:
            return archive.read(name)

    @property
    def archive_meta(self) -> dict:
        """The served archive's model_meta.json: what honest answers must say about the weights."""
        return json.loads(self.read_archive("model_meta.json"))

    @property
    def pretrained(self) -> bool:
        return bool(self.archive_meta["weights"]["pretrained"])

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in (self.run_dir / "service.log").read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pass
        return lines

    def wait_for_logs(self, predicate, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """Log lines matching ``predicate``, waiting for at least ``count`` (they are written
        after the response, by another process, through the supervisor's relay)."""
        found: list[dict] = []

        def enough() -> bool:
            found[:] = [line for line in self.log_lines() if predicate(line)]
            return len(found) >= count

        wait_until(enough, timeout)
        return found

    def stop(self) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO_ROOT / "scripts" / "serve.sh"), "--stop"], env=self.env,
                              capture_output=True, text=True, timeout=180)


def start_service(run_dir: Path, model_store: Path, extra_env: dict[str, str] | None = None,
                  watch_health: bool = True) -> RunningService:
    """`scripts/serve.sh --detach` with its own ports and RUN_DIR; records /health until ready."""
    env = service_env(run_dir, model_store, extra_env)
    service = RunningService(env=env, base_url=f"http://127.0.0.1:{env['PORT']}", run_dir=run_dir,
                             model_store=model_store)
    started = time.monotonic()
    process = subprocess.Popen([str(REPO_ROOT / "scripts" / "serve.sh"), "--detach"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while process.poll() is None and watch_health:
        try:
            response = requests.get(service.url("/health"), timeout=5)
            service.health_before_ready.append((response.status_code, response.json()))
        except requests.RequestException:
            pass
        time.sleep(0.2)
    output, _ = process.communicate(timeout=600)
    service.startup_s = time.monotonic() - started
    service.startup_output = output
    if process.returncode != 0:
        service.stop()
        raise RuntimeError(f"serve.sh --detach failed ({process.returncode}):\n{output}")
    return service


def variant_archive(source: Path, target_dir: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the archive with some members replaced (e.g. the handler entry or weights)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            if item.filename not in replace:
                dst.writestr(item.filename, src.read(item.filename))
        for name, data in replace.items():
            dst.writestr(name, data)
    return target


@dataclass
class ForegroundService:
    """scripts/service/supervisor.py in the foreground, as a container runtime or supervisor would run it."""

    process: subprocess.Popen
    service: RunningService

    def wait_healthy(self, timeout: float = 300) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}")
            try:
                if requests.get(self.service.url("/health"), timeout=5).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError("service did not become healthy")

    def terminate(self, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.service.stop()
            self.process.kill()
            return self.process.wait(timeout=30)


def start_foreground(run_dir: Path, model_store: Path, extra_env: dict[str, str] | None = None) -> ForegroundService:
    """Start without waiting for readiness; output goes to RUN_DIR/service.log like --detach."""
    env = service_env(run_dir, model_store, extra_env)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "service.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "scripts.service.supervisor"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    service = RunningService(env=env, base_url=f"http://127.0.0.1:{env['PORT']}", run_dir=run_dir,
                             model_store=model_store)
    return ForegroundService(process=process, service=service)
