#!/usr/bin/env python3
"""Benchmark the service: a bounded load sweep through the proxy, side by side with the same
model in-process, plus cold start and memory.

    python -m scripts.bench.benchmark --start                  start a private instance (free loopback ports),
                                                  measure cold start, sweep, stop it
    python -m scripts.bench.benchmark --url http://127.0.0.1:5000   sweep a running service instead
    ... --stock                                   TorchServe's stock handler on the same weights
    ... --peer kserve                             KServe's Python model server, eager PyTorch
                                                  predictor, same weights (scripts/bench/kserve_peer.py,
                                                  its own venv: scripts/bench/benchmark.sh makes it)
    ... --variant BACKEND=torchscript             another private instance with other settings

Closed loop (--concurrency): c clients, each sending its next request when the last is answered.
Open loop (--open-loop 0.5,0.8,1.0 or --rates 5,10): requests at a fixed rate, Poisson arrivals
by default (--arrivals fixed: evenly spaced), at fractions of each service's own capacity (its
closed-loop req/s at --capacity-concurrency, measured first in the same run) or at the same
absolute rates for all; latency is taken from each request's intended send time, so a client
held up by a slow server still counts the wait (no coordinated omission). Every level reports
p50/p90/p95/p99, errors, the benchmark's own CPU time (it shares the cores with the service)
and the service's CPU time, and open levels the achieved rate and late / dropped sends.

With --stock, --peer or --variant every service stays up for the whole run and they take turns
at each level (--rounds, alternating order), so a drift in the machine's speed hits them all.

Memory: RSS (and PSS) of each service's process tree and its parts (JVM frontend, Python
workers, nginx, launcher, supervisor), found from RUN_DIR/service.pid, and the RSS of a bare
``python -c "import torch"`` beside it.

Loopback only; every level is bounded by a request count and a time limit. Writes
``<out>/benchmark.json``, ``<out>/benchmark.md`` and (with matplotlib) ``<out>/benchmark.png``;
``--csv FILE`` and ``--json FILE`` write every level of every service there as well.
Extras for the plot and progress bar: ``.venv/bin/pip install -r requirements/bench.txt``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import psutil
import requests
import torch

from handler.backends import create_backend
from handler.decoding import DecodeLimits
from handler.model_meta import parse_model_meta
from handler.pipeline import ClassificationPipeline
from handler.runtime_env import available_cpus, configure_torch_threads
from scripts.bench.loadgen import (ARRIVALS, LATENCY_NOTE, cpu_seconds, csv_rows, latency_summary, parse_fractions,
                                   parse_rates, percentile_ratio_interval, pool_open_rounds, pool_service_cpu,
                                   run_open_level, write_csv, write_json)
from scripts.bench.machine import cpu_description
from scripts.bench.plot import draw
from scripts.bench.process_tree import import_rss_mb, supervisor_pid, tree_cpu_seconds, tree_memory
from scripts.service.ports import free_loopback_port as free_port
from scripts.service.settings import REPO_ROOT, load_settings

try:
    from tqdm import tqdm
except ImportError:  # the progress bar is optional
    tqdm = None


def sample_image(width: int = 640, height: int = 480) -> bytes:
    """A 640x480 JPEG with photo-like structure, generated so every run uses the same bytes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def pool_rounds(rounds: list[dict]) -> dict:
    """One level's rounds as one: req/s over all their time, percentiles over all latencies,
    and the spread of the per-round req/s (the development machine's speed drifts by up to 30 %)."""
    latencies = [value for level in rounds for value in level["_latencies"]]
    ok, seconds = sum(level["ok"] for level in rounds), sum(level["seconds"] for level in rounds)
    errors: Counter = Counter()
    for level in rounds:
        errors.update(level["errors"])
    cpu = sum(level.get("loadgen_cpu_s", 0.0) for level in rounds)
    return {
        "mode": "closed", "concurrency": rounds[0]["concurrency"],
        "requests": sum(level["requests"] for level in rounds), "ok": ok,
        "seconds": round(seconds, 2), "req_per_s": round(ok / seconds, 2) if seconds else 0.0,
        **latency_summary(latencies), "errors": dict(errors),
        "rounds_req_per_s": [level["req_per_s"] for level in rounds],
        "loadgen_cpu_s": round(cpu, 3), "loadgen_cores": round(cpu / seconds, 3) if seconds else None,
        **pool_service_cpu(rounds),
    }


# ----------------------------------------------------------------------------- load
def run_level(url: str, image: bytes, concurrency: int, max_requests: int, max_seconds: float,
              content_type: str = "image/jpeg", make_sender: Callable[[], Callable[[], int]] | None = None) -> dict:
    """``concurrency`` closed-loop clients until ``max_requests`` answers or ``max_seconds``.
    ``make_sender``: each client's own way to send one request (returns its status); default a POST
    of ``image`` to ``url``."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds
    bar = tqdm(total=max_requests, desc=f"c={concurrency:>2}", leave=False, disable=None) if tqdm else None

    def client() -> None:
        send = make_sender() if make_sender else None
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= max_requests:
                    return
                issued[0] += 1
            started = time.monotonic()
            if send is not None:
                status = send()
            else:
                try:
                    status = session.post(url, data=image, headers={"Content-Type": content_type},
                                          timeout=60).status_code
                except requests.RequestException:
                    status = 0
            elapsed = time.monotonic() - started
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(elapsed)
            if bar:
                bar.update(1)

    cpu_before = cpu_seconds()
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    cpu = cpu_seconds() - cpu_before
    if bar:
        bar.close()
    ok = statuses.get(200, 0)
    return {
        "mode": "closed", "concurrency": concurrency, "requests": sum(statuses.values()), "ok": ok,
        "seconds": round(wall, 2), "req_per_s": round(ok / wall, 2) if wall else 0.0,
        **latency_summary(latencies),
        "errors": {str(k): v for k, v in statuses.items() if k != 200},
        "loadgen_cpu_s": round(cpu, 3), "loadgen_cores": round(cpu / wall, 3) if wall else None,
        "_latencies": latencies,
    }


@dataclass
class Target:
    """One service under load: where to send, what, and the root of its process tree (for its
    CPU time and memory)."""

    name: str
    url: str
    body: bytes
    content_type: str = "image/jpeg"
    pid: int | None = None
    # Another way to call it (scripts/bench/grpc_load.py: v2 binary over HTTP, gRPC): timeout -> send().
    make_send: Callable[[float], Callable[[], int]] | None = None

    def sender(self, timeout: float):
        if self.make_send is not None:
            return self.make_send(timeout)
        session = requests.Session()
        headers = {"Content-Type": self.content_type}

        def send() -> int:
            try:
                return session.post(self.url, data=self.body, headers=headers, timeout=timeout).status_code
            except requests.RequestException:
                return 0
        return send


def with_service_cpu(target: Target, measure) -> dict:
    """Run ``measure()`` and add the CPU seconds the target's processes used meanwhile."""
    before = tree_cpu_seconds(target.pid)
    level = measure()
    after = tree_cpu_seconds(target.pid)
    level["service_cpu_s"] = round(after - before, 3) if before is not None and after is not None else None
    return level


def in_turns(targets: dict[str, Target], rounds: int, run_one) -> dict[str, list[dict]]:
    """Each target once per round, the order reversed every other round."""
    results: dict[str, list[dict]] = {name: [] for name in targets}
    for round_index in range(rounds):
        order = list(targets) if round_index % 2 == 0 else list(targets)[::-1]
        for name in order:
            results[name].append(with_service_cpu(targets[name], lambda t=targets[name]: run_one(t, round_index)))
    return results


# ------------------------------------------------------------------------ in-process
def load_archive(archive: Path, tmp: Path) -> tuple[Path, dict]:
    """The weights and model_meta.json, and the int8 model's folder when the archive holds one."""
    with zipfile.ZipFile(archive) as mar:
        meta = json.loads(mar.read("model_meta.json"))
        weights = tmp / meta["weights"]["file"]
        weights.write_bytes(mar.read(meta["weights"]["file"]))
        if meta.get("int8"):
            folder = Path(meta["int8"]["file"]).parent.as_posix() + "/"
            mar.extractall(tmp, [name for name in mar.namelist() if name.startswith(folder)])
    return weights, meta


def model_only(archive: Path, backend_name: str, precision: str, batch_sizes: list[int], image: bytes,
               seconds: float = 8.0) -> dict:
    """img/s of the backend alone and of the whole in-process pipeline (decode + transform + model)."""
    configure_torch_threads(available_cpus())
    with tempfile.TemporaryDirectory() as tmp:
        weights, raw_meta = load_archive(archive, Path(tmp))
        meta = parse_model_meta(raw_meta)
        backend = create_backend(
            backend_name, weights, meta.architecture, meta.num_classes, torch.device("cpu"), precision,
            # int8 is the archive's int8 model, as the service serves it
            int8_model=Path(tmp) / meta.int8.file if meta.int8 else None)
    pipeline = ClassificationPipeline(meta, backend, DecodeLimits())
    results = {"backend": backend.describe(), "threads": torch.get_num_threads(), "model_only": {}, "pipeline": {}}
    for batch_size in batch_sizes:
        batch = torch.stack([pipeline.prepare(image).tensor] * batch_size)
        backend(batch)  # warm-up
        count, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            backend(batch)
            count += batch_size
        results["model_only"][str(batch_size)] = round(count / (time.monotonic() - started), 2)
        count, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            pipeline.probabilities([pipeline.prepare(image).tensor for _ in range(batch_size)])
            count += batch_size
        results["pipeline"][str(batch_size)] = round(count / (time.monotonic() - started), 2)
    return results


# ------------------------------------------------------------------ private instance
class PrivateInstance:
    """python -m scripts.service.supervisor on free loopback ports with its own RUN_DIR."""

    def __init__(self, extra_env: dict[str, str]) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.env = dict(os.environ)
        self.env.update({k: str(free_port()) for k in ("PORT", "TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT",
                                                        "TS_METRICS_PORT", "TS_GRPC_INFERENCE_PORT",
                                                        "TS_GRPC_MANAGEMENT_PORT", "GRPC_PORT")})
        self.env.update({"BIND_ADDRESS": "127.0.0.1", "RUN_DIR": str(self.run_dir), "LOG_LEVEL": "WARNING"})
        self.env.update(extra_env)
        self.url = f"http://127.0.0.1:{self.env['PORT']}"
        self.grpc_target = f"127.0.0.1:{self.env['GRPC_PORT']}" if self.env.get("GRPC_PORT") else None
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300) -> float:
        started = time.monotonic()
        log = (self.run_dir / "service.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "scripts.service.supervisor"],
                                        cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited; see {self.run_dir / 'service.log'}")
            try:
                if requests.get(self.url + "/health", timeout=3).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError("service not healthy in time")

    @property
    def pid(self) -> int | None:
        """The supervisor's pid (python -m scripts.service.supervisor also writes it to RUN_DIR/service.pid)."""
        return supervisor_pid(self.run_dir) or (self.process.pid if self.process else None)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=120)
        # The log stays for a look afterwards; the converted model and unpacked archive (~200 MB) go.
        for bulky in ("model-cache", "tmp"):
            shutil.rmtree(self.run_dir / bulky, ignore_errors=True)


STOCK_MODEL_FILE = """from torchvision.models.resnet import Bottleneck, ResNet


class ResNet50(ResNet):
    def __init__(self):
        super().__init__(Bottleneck, [3, 4, 6, 3])
"""


class StockInstance:
    """Plain TorchServe with its stock ``image_classifier`` handler on the same weights, default
    settings (1 worker, no batching, default threads): the baseline the speed goals compare with."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.dir = Path(tempfile.mkdtemp(prefix="bench-stock-"))
        self.ports = {k: free_port() for k in ("inference", "management", "metrics", "grpc_i", "grpc_m")}
        self.url = f"http://127.0.0.1:{self.ports['inference']}/predictions/resnet50_stock"
        self.process: subprocess.Popen | None = None

    def build(self) -> None:
        stage = self.dir / "stage"
        stage.mkdir()
        weights, meta = load_archive(self.archive, stage)
        (stage / "model.py").write_text(STOCK_MODEL_FILE)
        (stage / "index_to_name.json").write_text(json.dumps({str(i): c for i, c in enumerate(meta["categories"])}))
        store = self.dir / "store"
        store.mkdir()
        archiver = Path(sys.executable).with_name("torch-model-archiver")
        subprocess.run([str(archiver), "--model-name", "resnet50_stock", "--version", "1.0",
                        "--model-file", str(stage / "model.py"), "--serialized-file", str(weights),
                        "--handler", "image_classifier", "--extra-files", str(stage / "index_to_name.json"),
                        "--export-path", str(store)], check=True)
        p = self.ports
        (self.dir / "config.properties").write_text("\n".join([
            f"inference_address=http://127.0.0.1:{p['inference']}",
            f"management_address=http://127.0.0.1:{p['management']}",
            f"metrics_address=http://127.0.0.1:{p['metrics']}",
            "grpc_inference_address=127.0.0.1", f"grpc_inference_port={p['grpc_i']}",
            "grpc_management_address=127.0.0.1", f"grpc_management_port={p['grpc_m']}",
            "disable_token_authorization=true", "enable_model_api=false", f"model_store={store}",
            "load_models=resnet50_stock.mar", "default_workers_per_model=1", "vmargs=-XX:-UsePerfData",
        ]) + "\n")

    def start(self, image: bytes, timeout: float = 300) -> float:
        self.build()
        # TorchServe's stock base_handler imports openvino.torch when openvino is installed (it is:
        # our BACKEND=openvino), and that import reports usage to Google Analytics and writes a
        # client id under ~/intel unless the user opted out. Opt this instance out, in its own HOME.
        home = self.dir / "home"
        (home / "intel").mkdir(parents=True, exist_ok=True)
        (home / "intel" / "openvino_telemetry").write_text("0\n")
        env = dict(os.environ, TMPDIR=str(self.dir), TEMP=str(self.dir), HOME=str(home))
        torchserve = Path(sys.executable).with_name("torchserve")
        log = (self.dir / "torchserve.log").open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen([str(torchserve), "--start", "--foreground", "--ncs", "--disable-token-auth",
                                         "--ts-config", str(self.dir / "config.properties")],
                                        env=env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        while time.monotonic() - started < timeout:
            try:
                if requests.post(self.url, data=image, timeout=10).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"stock TorchServe not ready; see {self.dir / 'torchserve.log'}")

    def stop(self) -> None:
        stop_process_group(self.process)


def stop_process_group(process: subprocess.Popen | None) -> None:
    """SIGTERM a server started in its own process group; SIGKILL it after 60 s."""
    if process and process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


class PeerInstance:
    """KServe's Python model server with an eager PyTorch predictor (scripts/bench/kserve_peer.py) on
    the same weights, run by the Python of its own venv on a free loopback port; it answers
    KServe's v1 protocol (JSON, the image base64-encoded), as a client of it would send."""

    MODEL_NAME = "resnet50"

    def __init__(self, archive: Path, python: Path) -> None:
        self.archive = archive
        self.python = Path(python)
        self.dir = Path(tempfile.mkdtemp(prefix="bench-kserve-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/models/{self.MODEL_NAME}:predict"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def request_body(image: bytes) -> bytes:
        return json.dumps({"instances": [{"image": {"b64": base64.b64encode(image).decode()}}]}).encode()

    def start(self, image: bytes, timeout: float = 300) -> float:
        if not self.python.exists():
            raise RuntimeError(f"{self.python} is missing: scripts/bench/benchmark.sh --peer kserve makes the peer's venv "
                               "(or: scripts/bench/benchmark.sh --prepare-peer)")
        weights, meta = load_archive(self.archive, self.dir)
        labels = self.dir / "labels.json"
        labels.write_text(json.dumps(list(meta["categories"])))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update(TMPDIR=str(self.dir), HOME=str(self.dir))
        command = [str(self.python), str(REPO_ROOT / "scripts" / "bench" / "kserve_peer.py"), "--weights", str(weights),
                   "--labels", str(labels), "--model_name", self.MODEL_NAME, "--http_port", str(self.port),
                   "--enable_grpc", "false", "--bind", "127.0.0.1"]
        log = (self.dir / "kserve.log").open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen(command, env=env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        body = self.request_body(image)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the KServe peer exited; see {self.dir / 'kserve.log'}")
            try:
                response = requests.post(self.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
                if response.status_code == 200 and response.json()["predictions"][0]:
                    self.check_loopback()
                    return time.monotonic() - started
            except (requests.RequestException, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the KServe peer not ready; see {self.dir / 'kserve.log'}")

    def check_loopback(self) -> None:
        """Every listening socket of the peer is on a loopback address (or it is stopped)."""
        sockets = []
        for process in [psutil.Process(self.process.pid)] + psutil.Process(self.process.pid).children(recursive=True):
            try:
                sockets += [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            except psutil.Error:
                pass
        outside = [f"{c.laddr.ip}:{c.laddr.port}" for c in sockets if not c.laddr.ip.startswith("127.")
                   and c.laddr.ip != "::1"]
        if outside:
            self.stop()
            raise RuntimeError(f"the KServe peer listens beyond loopback: {outside}")

    def stop(self) -> None:
        stop_process_group(self.process)
        for copy in self.dir.glob("*.pt"):  # the weights' copy (~100 MB); the log stays
            copy.unlink(missing_ok=True)


def memory_of(pid: int | None) -> dict:
    """RSS / PSS of the process tree under ``pid`` and its parts (scripts/bench/process_tree.py)."""
    if pid is None:
        return {"error": "no live supervisor pid (RUN_DIR/service.pid); pass --run-dir"}
    memory = tree_memory(pid)
    return memory if memory["process_count"] else {"error": f"process {pid} is gone"}


# ------------------------------------------------------------------------- reporting
def machine() -> dict:
    return {**cpu_description(), "cores": available_cpus(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__}


def _fmt(value, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _baseline_table(lines: list[str], report: dict, key: str, ratio_key: str, intro: str, name: str) -> None:
    lines += ["", intro, "",
              f"| concurrency | {name} req/s | {name} p99 ms | this service req/s | ratio | ratio per round |",
              "|---:|---:|---:|---:|---:|---|"]
    spreads = report.get(ratio_key) or [[] for _ in report["levels"]]
    for ours, theirs, spread in zip(report["levels"], report[key], spreads):
        ratio = ours["req_per_s"] / theirs["req_per_s"] if theirs["req_per_s"] else float("nan")
        rounds = ", ".join(f"{r:.2f}" for r in spread if r is not None) or "-"
        lines.append(f"| {theirs['concurrency']} | {theirs['req_per_s']} | {theirs['p99_ms']} | "
                     f"{ours['req_per_s']} | **{ratio:.2f}x** | {rounds} |")


def _memory_lines(memory: dict) -> list[str]:
    services = memory.get("services", {})
    if not services:
        return []
    columns = [("frontend_jvm", "JVM frontend"), ("workers", "Python workers"), ("nginx", "nginx"),
               ("torchserve_launcher", "TorchServe launcher"), ("supervisor", "supervisor"),
               ("kserve_server", "KServe server")]
    lines = ["Memory after the load, per service: RSS MB (PSS MB where readable; RSS counts shared pages in "
             "every process, PSS shares them out):", "",
             "| service | total | JVM + workers + nginx | " + " | ".join(label for _, label in columns) + " |",
             "|---|---:|---:|" + "---:|" * len(columns)]

    def cell(rss, pss) -> str:
        return "-" if rss is None else f"{rss:,.0f}" + (f" ({pss:,.0f})" if pss is not None else "")

    for name, split in services.items():
        if "error" in split:
            lines.append(f"| {name} | {split['error']} |" + " |" * (len(columns) + 1))
            continue
        parts = split["parts"]
        row = [cell(split["total_rss_mb"], split.get("total_pss_mb")),
               cell(split["service_rss_mb"], split.get("service_pss_mb")) if any(
                   p in parts for p in ("frontend_jvm", "workers", "nginx")) else "-"]
        for part, _ in columns:
            if part in parts:
                count = len(parts[part]["processes"])
                row.append(cell(parts[part]["rss_mb"], parts[part]["pss_mb"]) + (f" ×{count}" if count > 1 else ""))
            else:
                row.append("-")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    for probe in memory.get("import_torch", []):
        if "error" in probe:
            lines += ["", f"`import torch` with {probe['python']}: {probe['error']}"]
            continue
        lines += ["", f"A bare `python -c \"import torch\"` ({probe['python']}, torch {probe.get('torch', '?')}): "
                  f"RSS {probe['after_import_mb']:,.0f} MB, of which the import adds "
                  f"**{probe['import_cost_mb']:,.0f} MB** to a bare interpreter's {probe['bare_interpreter_mb']:,.0f} MB; "
                  "every Python worker that imports torch carries it."]
    return lines + [""]


def _open_loop_lines(report: dict) -> list[str]:
    block = report.get("open_loop")
    if not block:
        return []
    lines = ["", f"Open loop ({block['arrivals']} arrivals; {LATENCY_NOTE}). "
             + ("Rates as fractions of each service's own capacity: its closed-loop req/s at "
                f"c={block['capacity_concurrency']} in this run "
                f"({', '.join(f'{n} {r}' for n, r in block['capacity_rps'].items())})."
                if block.get("capacity_rps") else "The same absolute rates for every service."),
             "", "| level | service | target req/s | achieved req/s | p50 ms | p90 ms | p95 ms | p99 ms | "
             "errors | late | dropped | load-gen CPU s (cores) | service CPU s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    targets = block["targets"]
    count = max((len(levels) for levels in targets.values()), default=0)
    for index in range(count):
        for name, levels in targets.items():
            if index >= len(levels):
                continue
            lv = levels[index]
            label = f"{lv['fraction'] * 100:.0f} %" if lv.get("fraction") else f"{lv['target_rps']} req/s"
            lines.append(
                f"| {label} | {name} | {lv['target_rps']:.2f} | {lv['achieved_rps']:.2f} | {_fmt(lv['p50_ms'])} | "
                f"{_fmt(lv['p90_ms'])} | {_fmt(lv['p95_ms'])} | {_fmt(lv['p99_ms'])} | "
                f"{sum(lv['errors'].values())} | {lv['late']} | {lv['dropped']} | "
                f"{lv['loadgen_cpu_s']:.2f} ({_fmt(lv['loadgen_cores'], '.2f')}) | {_fmt(lv.get('service_cpu_s'), '.1f')} |")
    return lines


def markdown(report: dict) -> str:
    lines = [f"# Benchmark ({report['label']})", "",
             f"Machine: {report['machine']['cpu']} (CPU family {report['machine'].get('cpu_family')}, model "
             f"{report['machine'].get('model')}; {', '.join(report['machine'].get('vector_flags', []))}), "
             f"{report['machine']['cores']} cores, "
             f"{report['machine']['memory_gb']} GB; torch {report['machine']['torch']}.", "",
             f"Settings: {json.dumps(report['settings'])}", ""]
    if report.get("cold_start_s") is not None:
        lines += [f"Cold start to a 200 /health: **{report['cold_start_s']:.1f} s**", ""]
    if report.get("memory"):
        lines += _memory_lines(report["memory"])
    if report["levels"]:
        lines += ["Closed loop (c clients, each sending its next request when the last is answered); percentiles "
                  "nearest-rank; the load generator's CPU time is this benchmark process's user + system time "
                  "over the level (cores = CPU s ÷ wall s):", "",
                  "| concurrency | req/s | p50 ms | p90 ms | p95 ms | p99 ms | requests | errors | "
                  "load-gen CPU s (cores) | service CPU s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for level in report["levels"]:
        lines.append(f"| {level['concurrency']} | {level['req_per_s']} | {level['p50_ms']} | {_fmt(level.get('p90_ms'))} | "
                     f"{level['p95_ms']} | {level['p99_ms']} | {level['requests']} | {level['errors'] or '-'} | "
                     f"{_fmt(level.get('loadgen_cpu_s'), '.2f')} ({_fmt(level.get('loadgen_cores'), '.2f')}) | "
                     f"{_fmt(level.get('service_cpu_s'), '.1f')} |")
    if report.get("stock_levels"):
        _baseline_table(lines, report, "stock_levels", "rounds_ratio",
                        "Stock TorchServe `image_classifier` handler, same weights, same load, same run, both "
                        f"services up and taking turns at each level ({report.get('rounds', 1)} turns each, "
                        "alternating who goes first; its defaults: 1 worker, no batching, default threads; no proxy):",
                        "stock")
    if report.get("peer_levels"):
        _baseline_table(lines, report, "peer_levels", "peer_rounds_ratio",
                        "KServe's Python model server (`kserve.Model`, eager PyTorch predictor: PIL decode, "
                        "torchvision's transforms of the weights, `eval()` + `inference_mode`; its defaults: 1 "
                        "process, no batching, torch's default threads; v1 protocol, the JPEG base64 in JSON; "
                        "scripts/bench/kserve_peer.py), same weights, taking turns with the others at each level:",
                        "KServe")
    if report.get("variants"):
        names = [v["label"] for v in report["variants"]]
        stock = {lv["concurrency"]: lv["req_per_s"] for lv in report.get("stock_levels", [])}
        peer = {lv["concurrency"]: lv["req_per_s"] for lv in report.get("peer_levels", [])}
        lines += ["", "Other settings, each a private instance of its own, up for the whole sweep and taking "
                  "turns with the others at every level (req/s, p99 ms, and ÷ stock where it ran"
                  + (", ÷ KServe" if peer else "") + "):", "",
                  "| concurrency | this service (default) | " + " | ".join(f"`{n}`" for n in names) + " |",
                  "|---:|" + "---:|" * (len(names) + 1)]

        def cell(level: dict) -> str:
            base = stock.get(level["concurrency"])
            ratio = f", **{level['req_per_s'] / base:.2f}×**" if base else ""
            if peer.get(level["concurrency"]):
                ratio += f"{' stock' if base else ''}, {level['req_per_s'] / peer[level['concurrency']]:.2f}× KServe"
            return f"{level['req_per_s']} (p99 {level['p99_ms']:.0f}{ratio})"

        for i, ours in enumerate(report["levels"]):
            lines.append(f"| {ours['concurrency']} | {cell(ours)} | "
                         + " | ".join(cell(v["levels"][i]) for v in report["variants"]) + " |")
    lines += _protocol_lines(report)
    lines += _open_loop_lines(report)
    if report.get("in_process"):
        ip = report["in_process"]
        lines += ["", f"In-process, same backend ({ip['backend']['name']}, {ip['backend']['precision']}, "
                  f"{ip['threads']} threads):", "", "| batch | model only img/s | decode+transform+model img/s |",
                  "|---:|---:|---:|"]
        for batch, value in ip["model_only"].items():
            lines.append(f"| {batch} | {value} | {ip['pipeline'][batch]} |")
        if report["levels"]:
            best_served = max(level["req_per_s"] for level in report["levels"])
            best_model = max(ip["model_only"].values())
            lines += ["", f"Best served req/s ÷ best in-process model-only img/s = **{best_served / best_model:.2f}**"]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> bool:
    """Throughput against p99 (closed loop) and p99 against offered load (open loop): scripts/bench/plot.py,
    from the same rows as the CSV, so a CSV alone can be drawn again."""
    return draw(csv_rows(report), path, f"Served through nginx: {report['label']}")


def parse_concurrency(text: str) -> list[int]:
    """``"1,2,8"`` -> [1, 2, 8]; ``"none"`` or ``""`` -> [] (no closed-loop sweep)."""
    if text.strip().lower() in ("", "none", "0"):
        return []
    values = [int(part) for part in text.split(",") if part.strip()]
    if any(value < 1 for value in values):
        raise ValueError("concurrency levels are positive integers")
    return values


def ratios_per_round(ours: list[dict], theirs: list[dict]) -> list[float | None]:
    return [round(o["req_per_s"] / t["req_per_s"], 2) if t["req_per_s"] else None for o, t in zip(ours, theirs)]


PROTOCOLS = ("predict", "v2-http", "v2-grpc")
PROTOCOL_TARGETS = ("v2-http", "v2-grpc")  # targets named after their protocol ("predict" is "default")


def parse_protocols(text: str) -> list[str]:
    """``"v2-http,v2-grpc"`` -> ["v2-http", "v2-grpc"]; each one of PROTOCOLS, no repeats."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"--protocols takes a list of {', '.join(PROTOCOLS)} (no repeats), not {text!r}")
    return names


def protocol_targets(protocols: list[str], url: str, grpc_target: str, image: bytes, model: str,
                     pid: int | None) -> dict[str, Target]:
    """The Open Inference Protocol targets of one instance (scripts/bench/grpc_load.py)."""
    from scripts.bench.grpc_load import grpc_sender, http_sender, v2_grpc_request, v2_http_request

    targets = {}
    if "v2-http" in protocols:
        path, body, headers = v2_http_request(image, model)
        targets["v2-http"] = Target("v2-http", url + path, body, headers["Content-Type"], pid,
                                    make_send=http_sender(url + path, body, headers))
    if "v2-grpc" in protocols:
        targets["v2-grpc"] = Target("v2-grpc", grpc_target, b"", "", pid,
                                    make_send=grpc_sender(grpc_target, v2_grpc_request(image, model)))
    return targets


def _protocol_lines(report: dict) -> list[str]:
    """gRPC against HTTP, both the Open Inference Protocol with binary tensors, same instance, same turns."""
    levels = report.get("protocols", {})
    http, grpc_levels = levels.get("v2-http", []), levels.get("v2-grpc", [])
    if not http or not grpc_levels:
        return []
    lines = ["", "The Open Inference Protocol v2, one image per call, binary tensors, the same instance: over HTTP "
             "(POST /v2/models/NAME/infer through nginx) and over gRPC (ModelInfer on GRPC_PORT, through the "
             f"supervisor's front and nginx), taking turns at each level ({report.get('rounds', 1)} turns each, "
             "alternating who goes first):", "",
             "| concurrency | HTTP req/s | HTTP p50 / p99 ms | gRPC req/s | gRPC p50 / p99 ms | gRPC ÷ HTTP req/s | "
             "gRPC ÷ HTTP p99 | req/s ratio per turn | service CPU ms per call HTTP / gRPC | "
             "load-gen CPU s HTTP / gRPC |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    spreads = report.get("protocols_rounds_ratio") or [[] for _ in http]
    intervals = report.get("protocols_p99_ratio_interval") or [None for _ in http]
    for h, g, spread, interval in zip(http, grpc_levels, spreads, intervals):
        ratio = g["req_per_s"] / h["req_per_s"] if h["req_per_s"] else float("nan")
        p99 = g["p99_ms"] / h["p99_ms"] if h.get("p99_ms") and g.get("p99_ms") is not None else float("nan")
        p99_text = f"{p99:.2f}" + (f" ({interval[0]:.2f}–{interval[1]:.2f})" if interval else "")
        rounds = ", ".join(f"{r:.2f}" for r in spread if r is not None) or "-"
        lines.append(f"| {h['concurrency']} | {h['req_per_s']} | {_fmt(h['p50_ms'])} / {_fmt(h['p99_ms'])} | "
                     f"{g['req_per_s']} | {_fmt(g['p50_ms'])} / {_fmt(g['p99_ms'])} | **{ratio:.2f}x** | {p99_text} | "
                     f"{rounds} | {_cpu_per_call(h)} / {_cpu_per_call(g)} | "
                     f"{_fmt(h.get('loadgen_cpu_s'), '.1f')} / {_fmt(g.get('loadgen_cpu_s'), '.1f')} |")
    return lines + ["", "Service CPU per call: the instance's processes (supervisor with the gRPC front, nginx, "
                    "TorchServe, workers) over the level ÷ calls answered; what the front and its loopback hop "
                    "cost shows as gRPC's excess over HTTP's. In brackets after the p99 ratio: its 90 % bootstrap "
                    "interval (pairs of turns resampled; scripts/bench/loadgen.py percentile_ratio_interval): a p99 is "
                    "a level's few slowest calls, and an interval that holds 1.0 is no measured difference."]


def _cpu_per_call(level: dict) -> str:
    cpu, ok = level.get("service_cpu_s"), level.get("ok")
    return "-" if cpu is None or not ok else f"{cpu * 1000 / ok:.0f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: --start a private one)")
    parser.add_argument("--run-dir", type=Path,
                        help="with --url: the service's RUN_DIR, whose service.pid roots the memory report "
                             "(default: RUN_DIR of the settings)")
    parser.add_argument("--start", action="store_true", help="start a private instance and measure cold start")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32",
                        help="closed-loop levels; 'none' for no closed-loop sweep")
    parser.add_argument("--requests", type=int, default=200, help="requests per level (bound)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per level (bound)")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--stock", action="store_true",
                        help="also load TorchServe's stock image_classifier on the same weights, same sweep")
    parser.add_argument("--peer", choices=["kserve"],
                        help="also serve the same weights with KServe's Python model server and an eager PyTorch "
                             "predictor (scripts/bench/kserve_peer.py), in turns with the others")
    parser.add_argument("--peer-python", type=Path, default=REPO_ROOT / ".venv-bench-kserve" / "bin" / "python",
                        help="the interpreter of the peer's venv (scripts/bench/benchmark.sh makes it)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="split each level into this many turns per service (with --stock they alternate)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also start a private instance with these settings (e.g. BACKEND=torchscript) and "
                             "give it turns at every level beside the others; repeatable")
    loop = parser.add_argument_group("open loop")
    loop.add_argument("--open-loop", metavar="FRACTIONS",
                      help="open-loop levels at these fractions of each service's capacity, e.g. 0.5,0.8,1.0 "
                           "or 50%%,80%%,100%%")
    loop.add_argument("--rates", metavar="R1,R2", help="open-loop levels at these requests/s, the same for all")
    loop.add_argument("--arrivals", choices=ARRIVALS, default="poisson",
                      help="poisson: exponential gaps (default); fixed: evenly spaced")
    loop.add_argument("--capacity-concurrency", type=int, default=8,
                      help="capacity = closed-loop req/s at this concurrency, from the sweep when it has that "
                           "level, measured before the open levels otherwise")
    loop.add_argument("--capacity-seconds", type=float, default=20.0, help="bound of a separate capacity level")
    loop.add_argument("--open-seconds", type=float, help="seconds per open-loop level (default: --seconds)")
    loop.add_argument("--open-requests", type=int, help="requests per open-loop level (default: --requests)")
    loop.add_argument("--max-inflight", type=int, default=64,
                      help="senders per open level: a send due while all wait for answers goes out late")
    loop.add_argument("--late-ms", type=float, default=10.0, help="a send this much after its time counts as late")
    loop.add_argument("--max-lateness", type=float, default=2.0,
                      help="seconds: a send that cannot start this long after its time is dropped (not sent)")
    loop.add_argument("--timeout", type=float, default=30.0, help="seconds an open-loop request may take")
    loop.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals")
    parser.add_argument("--torch-python", action="append", type=Path, default=[],
                        help="also measure `import torch` RSS with this interpreter (e.g. a CPU-build venv's); "
                             "the benchmark's own interpreter is always measured")
    parser.add_argument("--csv", type=Path, help="also write every level of every service as CSV here")
    parser.add_argument("--json", type=Path, help="also write the whole report as JSON here")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    parser.add_argument("--protocols", default="predict",
                        help="how the default instance is called, each a target of its own taking turns with the "
                             "others: predict (POST /predict, the image as the body), v2-http (POST "
                             "/v2/models/NAME/infer, binary tensor), v2-grpc (ModelInfer on GRPC_PORT); "
                             "e.g. v2-http,v2-grpc compares the two Open Inference Protocol transports in one run")
    parser.add_argument("--grpc-target", help="with --url: HOST:PORT of its GRPC_PORT (default: 127.0.0.1:GRPC_PORT "
                                              "of the settings)")
    parser.add_argument("--label", default="default settings")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        variants = {spec: dict(pair.split("=", 1) for pair in spec.split(",")) for spec in args.variant}
    except ValueError:
        parser.error("--variant takes KEY=VALUE pairs separated by commas")
    if variants and args.url:
        parser.error("--variant starts private instances: use it with --start, not --url")
    try:
        concurrency_levels = parse_concurrency(args.concurrency)
        fractions = parse_fractions(args.open_loop) if args.open_loop else []
        rates = parse_rates(args.rates) if args.rates else []
    except ValueError as error:
        parser.error(str(error))
    if fractions and rates:
        parser.error("--open-loop (fractions of capacity) and --rates (absolute) are alternatives")
    if not concurrency_levels and not (fractions or rates):
        parser.error("nothing to measure: give --concurrency levels, --open-loop or --rates")
    if args.rounds < 1 or args.max_inflight < 1:
        parser.error("--rounds and --max-inflight are at least 1")
    try:
        protocols = parse_protocols(args.protocols)
    except ValueError as error:
        parser.error(str(error))
    if "predict" not in protocols and (args.stock or args.peer or variants):
        parser.error("--stock, --peer and --variant compare against POST /predict: keep predict in --protocols")
    open_seconds = args.open_seconds or args.seconds
    open_requests = args.open_requests or args.requests
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop what we started

    settings = load_settings()
    instance = None
    cold_start = None
    url = None
    if args.url:
        url = args.url.rstrip("/")
        if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("the benchmark only targets loopback addresses")
    image = sample_image()
    archive = Path(settings["MODEL_STORE"]) / f"{settings['MODEL_NAME']}.mar"
    stock = StockInstance(archive) if args.stock else None
    peer = PeerInstance(archive, args.peer_python) if args.peer == "kserve" else None
    variant_instances: dict[str, PrivateInstance] = {}
    closed: dict[str, list[dict]] = {}
    closed_ratios: dict[str, list[list]] = {"stock": [], "kserve": [], "v2-http": []}
    p99_intervals: list[tuple[float, float] | None] = []  # gRPC ÷ HTTP p99, 90 % bootstrap, per level
    open_levels: dict[str, list[dict]] = {}
    capacity: dict[str, float] = {}
    memory: dict = {"services": {}}
    try:
        if not args.url:
            instance = PrivateInstance({})
            print("starting a private instance...", flush=True)
            cold_start = instance.start()
            url = instance.url
            print(f"cold start to a 200 /health: {cold_start:.1f} s", flush=True)
        ours_pid = instance.pid if instance else supervisor_pid(args.run_dir or Path(settings["RUN_DIR"]))
        if stock:
            # All stay up for the whole run and take turns at each level (the idle ones cost next
            # to nothing), so a drift in this machine's speed hits both sides of a ratio.
            print("starting stock TorchServe (image_classifier handler, defaults)...", flush=True)
            stock.start(image)
        if peer:
            print(f"starting the KServe peer ({args.peer_python})...", flush=True)
            print(f"KServe peer ready in {peer.start(image):.1f} s", flush=True)
        for spec, extra_env in variants.items():
            print(f"starting a private instance with {spec}...", flush=True)
            variant_instances[spec] = PrivateInstance(extra_env)
            variant_instances[spec].start()
        targets = {}
        if "predict" in protocols:
            targets["default"] = Target("default", url + "/predict", image, pid=ours_pid)
        grpc_target = (instance.grpc_target if instance else None) or args.grpc_target \
            or f"127.0.0.1:{settings['GRPC_PORT']}"
        targets |= protocol_targets(protocols, url, grpc_target, image, settings["MODEL_NAME"], ours_pid)
        targets |= {spec: Target(spec, i.url + "/predict", image, pid=i.pid) for spec, i in variant_instances.items()}
        if stock:
            targets["stock"] = Target("stock", stock.url, image, pid=stock.process.pid)
        if peer:
            targets["kserve"] = Target("kserve", peer.url, PeerInstance.request_body(image), "application/json",
                                       pid=peer.process.pid)
        for target in targets.values():
            send = target.sender(60)
            for _ in range(5):  # warm-up
                send()

        def closed_level(concurrency: int, max_requests: int, max_seconds: float,
                         sweep: bool = True) -> dict[str, dict]:
            rounds = in_turns(targets, args.rounds, lambda t, _r: run_level(
                t.url, t.body, concurrency, max(1, max_requests // args.rounds), max_seconds / args.rounds,
                t.content_type, make_sender=(lambda t=t: t.sender(60)) if t.make_send else None))
            pooled = {name: pool_rounds(results) for name, results in rounds.items()}
            for baseline in ("stock", "kserve"):
                if sweep and baseline in rounds:
                    closed_ratios[baseline].append(ratios_per_round(rounds["default"], rounds[baseline]))
            if sweep and {"v2-grpc", "v2-http"} <= rounds.keys():  # gRPC ÷ HTTP, turn by turn
                closed_ratios["v2-http"].append(ratios_per_round(rounds["v2-grpc"], rounds["v2-http"]))
                p99_intervals.append(percentile_ratio_interval([r["_latencies"] for r in rounds["v2-grpc"]],
                                                               [r["_latencies"] for r in rounds["v2-http"]]))
            return pooled

        for concurrency in concurrency_levels:
            pooled = closed_level(concurrency, args.requests, args.seconds)
            for name, level in pooled.items():
                closed.setdefault(name, []).append(level)
            print(f"c={concurrency:>2}: " + "  | ".join(
                f"{name} {lv['req_per_s']:6.2f} req/s p99 {_fmt(lv['p99_ms'], '7.1f')} ms errors {lv['errors'] or '-'} "
                f"load-gen CPU {lv['loadgen_cpu_s']:.1f} s" for name, lv in pooled.items()), flush=True)

        if fractions:
            if args.capacity_concurrency in concurrency_levels:
                index = concurrency_levels.index(args.capacity_concurrency)
                capacity = {name: closed[name][index]["req_per_s"] for name in targets}
            else:
                print(f"capacity: closed loop at c={args.capacity_concurrency}...", flush=True)
                pooled = closed_level(args.capacity_concurrency, args.requests, args.capacity_seconds, sweep=False)
                capacity = {name: level["req_per_s"] for name, level in pooled.items()}
            print("capacity (req/s): " + ", ".join(f"{n} {r}" for n, r in capacity.items()), flush=True)
        open_plan = [(fraction, None) for fraction in fractions] + [(None, rate) for rate in rates]
        for level_index, (fraction, rate) in enumerate(open_plan):
            def one(target: Target, round_index: int) -> dict:
                target_rate = rate if rate is not None else fraction * capacity[target.name]
                if not target_rate > 0:
                    return {"skipped": "no capacity measured"}
                return run_open_level(lambda: target.sender(args.timeout), target_rate,
                                      max(1, open_requests // args.rounds), open_seconds / args.rounds,
                                      args.arrivals, seed=args.seed + 1000 * level_index + round_index,
                                      max_inflight=args.max_inflight, late_ms=args.late_ms,
                                      max_lateness_s=args.max_lateness)

            rounds = in_turns(targets, args.rounds, one)
            parts = []
            for name, results in rounds.items():
                if any("skipped" in r for r in results):
                    print(f"open loop: {name} skipped (no capacity measured)", flush=True)
                    continue
                level = pool_open_rounds(results)
                level["fraction"] = fraction
                level["capacity_rps"] = capacity.get(name) if fraction else None
                open_levels.setdefault(name, []).append(level)
                parts.append(f"{name} {level['target_rps']:.2f}->{level['achieved_rps']:.2f} req/s "
                             f"p50 {_fmt(level['p50_ms'])} p99 {_fmt(level['p99_ms'])} ms "
                             f"late {level['late']} dropped {level['dropped']} errors {level['errors'] or '-'} "
                             f"load-gen CPU {level['loadgen_cpu_s']:.1f} s")
            label = f"{fraction * 100:.0f}% of capacity" if fraction else f"{rate} req/s"
            print(f"open {label}: " + "  | ".join(parts), flush=True)

        print("memory...", flush=True)
        measured: set[int | None] = set()
        for name, target in targets.items():
            if name in PROTOCOL_TARGETS and target.pid in measured:
                continue  # another way into a service measured already
            measured.add(target.pid)
            memory["services"][name] = memory_of(target.pid)
        variant_runtime = {spec: requests.get(i.url + "/info", timeout=10).json()["default"][0]["customizedMetadata"]
                           ["runtime"] for spec, i in variant_instances.items()}
        described = requests.get(url + "/info", timeout=10).json()["default"][0]
    finally:
        for other in [stock, peer, *variant_instances.values(), instance]:
            if other:
                other.stop()
    memory["import_torch"] = []
    for python in [Path(sys.executable), *args.torch_python]:
        try:
            memory["import_torch"].append(import_rss_mb(str(python)))
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            memory["import_torch"].append({"python": str(python), "error": str(error)[:200]})
    runtime = described["customizedMetadata"]["runtime"]
    report = {
        "label": args.label, "machine": machine(), "cold_start_s": cold_start, "memory": memory,
        "levels": closed.get("default", []), "rounds": args.rounds,
        "settings": {"workers": len(described["workers"]), "batch_size": described["batchSize"],
                     "max_batch_delay_ms": described["maxBatchDelay"], "backend": runtime["name"],
                     "precision": runtime["precision"], "threads_per_worker": runtime["threads_per_worker"]},
    }
    if stock:
        report["stock_levels"] = closed.get("stock", [])
        report["rounds_ratio"] = closed_ratios["stock"]
    if peer:
        report["peer"] = {"server": "kserve", "python": str(args.peer_python), "protocol": "v1 JSON, image base64",
                          "predictor": "scripts/bench/kserve_peer.py"}
        report["peer_levels"] = closed.get("kserve", [])
        report["peer_rounds_ratio"] = closed_ratios["kserve"]
    if set(protocols) & set(PROTOCOL_TARGETS):
        report["protocols"] = {name: closed.get(name, []) for name in PROTOCOL_TARGETS if name in protocols}
        report["protocols_rounds_ratio"] = closed_ratios["v2-http"]
        report["protocols_p99_ratio_interval"] = p99_intervals
    if variants:
        report["variants"] = [{"label": spec, "env": variants[spec], "runtime": variant_runtime[spec],
                               "levels": closed.get(spec, [])} for spec in variants]
    if open_plan:
        report["open_loop"] = {"arrivals": args.arrivals, "note": LATENCY_NOTE,
                               "capacity_concurrency": args.capacity_concurrency if fractions else None,
                               "capacity_rps": capacity, "max_inflight": args.max_inflight, "late_ms": args.late_ms,
                               "max_lateness_s": args.max_lateness, "targets": open_levels}
    if not args.skip_in_process:
        print("in-process baseline...", flush=True)
        report["in_process"] = model_only(archive, runtime["name"], runtime["precision"],
                                          sorted({1, int(described["batchSize"])}), image)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.out_dir / "benchmark.json", report)
    (args.out_dir / "benchmark.md").write_text(markdown(report))
    plotted = plot(report, args.out_dir / "benchmark.png")
    written = [f"{args.out_dir}/benchmark.json", "benchmark.md"] + (["benchmark.png"] if plotted else [])
    if args.json:
        write_json(args.json, report)
        written.append(str(args.json))
    if args.csv:
        rows = write_csv(args.csv, report)
        written.append(f"{args.csv} ({rows} rows)")
    print(markdown(report))
    print("wrote " + ", ".join(written) + ("" if plotted or not report["levels"] else
                                           " (no plot: matplotlib not installed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
