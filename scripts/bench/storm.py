#!/usr/bin/env python3
"""Retry storms: goodput while clients retry every shed request, against clean capacity, in one run.

    python -m scripts.bench.storm --start                 a private instance (and one with SHED_HOLD_MS=0)
    python -m scripts.bench.storm --url http://127.0.0.1:5000
    ... --seconds 30 --connections 48 --clean-concurrency 8 --out test-artifacts/storm

For each instance, in turn:
1. clean: ``hey`` (Debian's compiled closed-loop load generator) at --clean-concurrency: capacity;
2. hot storm: ``hey`` with --connections, each sending its next request the moment an answer comes,
   503s included (a client that retries at once);
3. polite storm: --connections Python clients that wait the Retry-After of every 503 or 429.
Meanwhile GET /health is probed every 0.25 s. Reported per phase: 200s per second, the ratio to clean
capacity, every status seen, the generator's own CPU time (it shares the cores with the service),
the service's CPU time, and the readiness probes. "No accepted request is lost": every request gets
an answer, and only 200, 429 or 503 ones.

--compare-without-hold also runs the same phases on a second private instance with SHED_HOLD_MS=0
(shed requests answered at once, as before the tarpit), so the effect is measured in the same run.
Writes storm.json; exit 0 when the goals hold (hot >= 0.8 of clean, polite >= 0.95, only 200/429/503,
every probe 200) for the default instance.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from scripts.bench.process_tree import tree_cpu_seconds
from scripts.bench.machine import cpu_description
from scripts.bench.soak import image_mix

HOT_GOAL, POLITE_GOAL = 0.8, 0.95
ALLOWED = {200, 429, 503}


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_hey(url: str, body_file: Path, concurrency: int, seconds: float) -> dict:
    """hey closed loop for ``seconds``; statuses from its per-response CSV, its own CPU time."""
    hey = shutil.which("hey")
    if hey is None:
        raise SystemExit("hey is not installed (Debian: apt-get install hey; scripts/bench/benchmark.sh installs it "
                         "as root)")
    before = children_cpu_seconds()
    started = time.monotonic()
    result = subprocess.run([hey, "-z", f"{seconds:g}s", "-c", str(concurrency), "-m", "POST", "-T", "image/jpeg",
                             "-D", str(body_file), "-t", "60", "-o", "csv", url],
                            capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - started
    statuses: Counter = Counter()
    for row in csv.DictReader(io.StringIO(result.stdout)):
        statuses[int(row["status-code"])] += 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    return {"generator": "hey", "concurrency": concurrency, "seconds": round(wall, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "ok_per_s": round(statuses.get(200, 0) / seconds, 3),
            "transport_errors": errors[:5], "generator_cpu_s": round(children_cpu_seconds() - before, 2)}


def run_polite(url: str, body: bytes, clients: int, seconds: float) -> dict:
    """``clients`` Python clients that wait each 503's or 429's Retry-After before trying again."""
    deadline = time.monotonic() + seconds
    statuses: Counter = Counter()
    lock = threading.Lock()
    transport_errors: list[str] = []

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            try:
                response = session.post(url, data=body, headers={"Content-Type": "image/jpeg"}, timeout=60)
            except requests.RequestException as error:
                with lock:
                    transport_errors.append(repr(error))
                continue
            with lock:
                statuses[response.status_code] += 1
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", "1")))

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 90)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"generator": "python (honours Retry-After)", "concurrency": clients,
            "seconds": round(time.monotonic() - started, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "ok_per_s": round(statuses.get(200, 0) / seconds, 3), "transport_errors": transport_errors[:5],
            "generator_cpu_s": round(usage.ru_utime + usage.ru_stime - cpu_before, 2)}


class HealthProber:
    """GET /health every 0.25 s while a phase runs: readiness must stay 200 through any storm."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.statuses: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                self.statuses[session.get(self.base_url + "/health", timeout=5).status_code] += 1
            except requests.RequestException:
                self.statuses[0] += 1
            self._stop.wait(0.25)

    def __enter__(self) -> "HealthProber":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def measure(name: str, base_url: str, pid: int | None, body: bytes, body_file: Path, args) -> dict:
    url = base_url + "/predict"
    phases = {}
    for phase, run in (
            ("clean", lambda: run_hey(url, body_file, args.clean_concurrency, args.seconds)),
            ("hot_storm", lambda: run_hey(url, body_file, args.connections, args.seconds)),
            ("polite_storm", lambda: run_polite(url, body, args.connections, args.seconds))):
        cpu_before = tree_cpu_seconds(pid)
        with HealthProber(base_url) as prober:
            result = run()
        cpu_after = tree_cpu_seconds(pid)
        result["service_cpu_s"] = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
        result["health_probes"] = {str(k): v for k, v in sorted(prober.statuses.items())}
        phases[phase] = result
        print(f"  {name} {phase:13s} {result['ok_per_s']:7.2f} ok/s  statuses {result['statuses']}  "
              f"generator cpu {result['generator_cpu_s']} s  service cpu {result['service_cpu_s']} s  "
              f"/health {result['health_probes']}", flush=True)
        time.sleep(2)  # let the queue drain between phases
    clean = phases["clean"]["ok_per_s"] or float("nan")
    for phase in ("hot_storm", "polite_storm"):
        phases[phase]["ratio_to_clean"] = round(phases[phase]["ok_per_s"] / clean, 3)
    return phases


def verdict(phases: dict) -> dict:
    statuses = {int(code) for phase in phases.values() for code in phase["statuses"]}
    probes = {int(code) for phase in phases.values() for code in phase["health_probes"]}
    checks = {
        "hot_storm_at_least_0_8_of_clean": phases["hot_storm"]["ratio_to_clean"] >= HOT_GOAL,
        "polite_storm_at_least_0_95_of_clean": phases["polite_storm"]["ratio_to_clean"] >= POLITE_GOAL,
        "only_200_429_503": statuses <= ALLOWED and not any(p["transport_errors"] for p in phases.values()),
        "readiness_stays_200": probes == {200},
    }
    return {"passed": all(checks.values()), "checks": checks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--start", action="store_true", help="start a private instance (free loopback ports)")
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:5000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=48)
    parser.add_argument("--clean-concurrency", type=int, default=8)
    parser.add_argument("--compare-without-hold", action="store_true",
                        help="with --start: also an instance with SHED_HOLD_MS=0, in the same run")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/storm"))
    args = parser.parse_args(argv)

    from scripts.bench.benchmark import PrivateInstance

    name, body, _ = image_mix()[0]  # one 640x480 JPEG, as the benchmark's
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="storm-"))
    body_file = scratch / f"{name}.jpg"  # hey reads the body from a file
    body_file.write_bytes(body)
    report = {"machine": cpu_description(), "image": name, "seconds": args.seconds, "connections": args.connections,
              "clean_concurrency": args.clean_concurrency, "instances": {},
              "command": "python -m scripts.bench.storm " + " ".join(sys.argv[1:] if argv is None else argv)}
    variants = [("default", {})]
    if args.start and args.compare_without_hold:
        variants.append(("no_hold", {"SHED_HOLD_MS": "0"}))
    for label, env in variants:
        instance = None
        if args.start:
            instance = PrivateInstance(env)
            instance.start()
            base_url, pid = instance.url, instance.pid
        else:
            base_url, pid = args.url.rstrip("/"), None
        try:
            for _ in range(3):  # warm-up
                requests.post(base_url + "/predict", data=body, headers={"Content-Type": "image/jpeg"}, timeout=120)
            phases = measure(label, base_url, pid, body, body_file, args)
            report["instances"][label] = {"settings": env, "phases": phases, "verdict": verdict(phases)}
        finally:
            if instance:
                instance.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    (args.out / "storm.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({label: entry["verdict"] for label, entry in report["instances"].items()}, indent=1))
    print(f"wrote {args.out / 'storm.json'}")
    return 0 if report["instances"]["default"]["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
