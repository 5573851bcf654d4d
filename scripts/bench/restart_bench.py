#!/usr/bin/env python3
"""How fast the service is back: cold start, and /health 200 again after a worker is SIGKILLed.

    .venv/bin/python -m scripts.bench.restart_bench [--kills 3] [--json FILE] [-- ENV=VALUE ...]

Starts its own instance (scripts/serve.sh --detach on free loopback ports, its own RUN_DIR, the
repository's model store), so it never touches a running one. Cold start is measured twice:
the first start may convert the model for the runtime (MODEL_CACHE_DIR is empty), the second
reads the converted model back, which is what every later start does. Then the Python worker
is killed ``--kills`` times; each time the clock runs from the kill to the first /health 200.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

from scripts import REPO_ROOT
from scripts.service.ports import free_loopback_port as free_port


def wait_healthy(base: str, timeout: float, not_pid: int | None = None) -> float:
    """Seconds until /health is 200 (from a worker other than ``not_pid``, when given)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            response = requests.get(base + "/health", timeout=2)
            if response.status_code == 200 and response.json().get("worker_pid") != not_pid:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"/health not 200 within {timeout} s")


def worker_pid(run_dir: Path) -> int:
    supervisor = psutil.Process(int((run_dir / "service.pid").read_text()))
    workers = [p for p in supervisor.children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())]
    if not workers:
        raise RuntimeError("no TorchServe Python worker found")
    return workers[0].pid


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / "scripts" / "serve.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("env", nargs="*", help="extra settings for the instance, as NAME=VALUE")
    args = parser.parse_args(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="restart-bench-"))
    port = free_port()
    env = {**os.environ, "PORT": str(port), "BIND_ADDRESS": "127.0.0.1", "RUN_DIR": str(run_dir),
           "ENV_FILE": str(run_dir / "no.env"), "LOG_LEVEL": "WARNING"}
    env.update(dict(item.split("=", 1) for item in args.env))
    base = f"http://127.0.0.1:{port}"
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                     "settings": args.env, "cold_start_s": [], "kill_to_ready_s": []}
    try:
        for attempt in range(2):  # the first may convert the model; the second reads the cache
            started = time.monotonic()
            result = serve(env, "--detach")
            if result.returncode != 0:
                print(result.stdout + result.stderr, file=sys.stderr)
                return 1
            results["cold_start_s"].append(round(time.monotonic() - started, 2))
            if attempt == 0:
                serve(env, "--stop")
        for _ in range(args.kills):
            pid = worker_pid(run_dir)
            os.kill(pid, signal.SIGKILL)
            results["kill_to_ready_s"].append(round(wait_healthy(base, 120, not_pid=pid), 2))
            time.sleep(1)
    finally:
        serve(env, "--stop")
        shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
