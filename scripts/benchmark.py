#!/usr/bin/env python3
"""Benchmark the service: a bounded load sweep through the proxy, side by side with the same
model in-process, plus cold start and memory.

    scripts/benchmark.py --start                  start a private instance (free loopback ports),
                                                  measure cold start, sweep, stop it
    scripts/benchmark.py --url http://127.0.0.1:5000   sweep a running service instead
    ... --stock                                   TorchServe's stock handler on the same weights
    ... --variant BACKEND=torchscript             another private instance with other settings

With --stock or --variant every service stays up for the whole sweep and they take turns at
each level (--rounds, alternating order), so a drift in the machine's speed hits them all.

Loopback only; every level is bounded by a request count and a time limit. Writes
``<out>/benchmark.json``, ``<out>/benchmark.md`` and (with matplotlib) ``<out>/benchmark.png``.
Extras for the plot and progress bar: ``.venv/bin/pip install -r requirements/bench.txt``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import psutil
import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from handler.backends import create_backend  # noqa: E402
from handler.calibration import calibration_batches  # noqa: E402
from handler.decoding import DecodeLimits  # noqa: E402
from handler.model_meta import parse_model_meta  # noqa: E402
from handler.pipeline import ClassificationPipeline  # noqa: E402
from handler.runtime_env import available_cpus, configure_torch_threads  # noqa: E402
from scripts.settings import REPO_ROOT, load_settings  # noqa: E402

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


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def pool_rounds(rounds: list[dict]) -> dict:
    """One level's rounds as one: req/s over all their time, percentiles over all latencies,
    and the spread of the per-round req/s (the development machine's speed drifts by up to 30 %)."""
    latencies = [value for level in rounds for value in level["_latencies"]]
    ok, seconds = sum(level["ok"] for level in rounds), sum(level["seconds"] for level in rounds)
    errors: Counter = Counter()
    for level in rounds:
        errors.update(level["errors"])
    return {
        "concurrency": rounds[0]["concurrency"], "requests": sum(level["requests"] for level in rounds), "ok": ok,
        "seconds": round(seconds, 2), "req_per_s": round(ok / seconds, 2) if seconds else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1), "errors": dict(errors),
        "rounds_req_per_s": [level["req_per_s"] for level in rounds],
    }


# ----------------------------------------------------------------------------- load
def run_level(url: str, image: bytes, concurrency: int, max_requests: int, max_seconds: float) -> dict:
    """``concurrency`` closed-loop clients until ``max_requests`` answers or ``max_seconds``."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds
    bar = tqdm(total=max_requests, desc=f"c={concurrency:>2}", leave=False, disable=None) if tqdm else None

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= max_requests:
                    return
                issued[0] += 1
            started = time.monotonic()
            try:
                status = session.post(url, data=image, headers={"Content-Type": "image/jpeg"}, timeout=60).status_code
            except requests.RequestException:
                status = 0
            elapsed = time.monotonic() - started
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(elapsed)
            if bar:
                bar.update(1)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    if bar:
        bar.close()
    ok = statuses.get(200, 0)
    return {
        "concurrency": concurrency, "requests": sum(statuses.values()), "ok": ok, "seconds": round(wall, 2),
        "req_per_s": round(ok / wall, 2) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": {str(k): v for k, v in statuses.items() if k != 200},
        "_latencies": latencies,
    }


# ------------------------------------------------------------------------ in-process
def load_archive(archive: Path, tmp: Path) -> tuple[Path, dict]:
    with zipfile.ZipFile(archive) as mar:
        meta = json.loads(mar.read("model_meta.json"))
        weights = tmp / meta["weights"]["file"]
        weights.write_bytes(mar.read(meta["weights"]["file"]))
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
            # int8 calibrates as the service does (same folder or the same synthetic set)
            calibration=lambda: calibration_batches(meta.preprocessing, os.environ.get("INT8_CALIBRATION_DIR") or None))
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
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateInstance:
    """scripts/service.py on free loopback ports with its own RUN_DIR."""

    def __init__(self, extra_env: dict[str, str]) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.env = dict(os.environ)
        self.env.update({k: str(free_port()) for k in ("PORT", "TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT",
                                                        "TS_METRICS_PORT", "TS_GRPC_INFERENCE_PORT",
                                                        "TS_GRPC_MANAGEMENT_PORT")})
        self.env.update({"BIND_ADDRESS": "127.0.0.1", "RUN_DIR": str(self.run_dir), "LOG_LEVEL": "WARNING"})
        self.env.update(extra_env)
        self.url = f"http://127.0.0.1:{self.env['PORT']}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300) -> float:
        started = time.monotonic()
        log = (self.run_dir / "service.log").open("ab")
        self.process = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "service.py")],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT)
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

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=120)


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
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


def service_memory(url: str) -> dict:
    """RSS of the TorchServe frontend (java) and its Python workers, found by the inference port."""
    info = requests.get(url + "/info", timeout=10).json()["default"][0]
    worker_pids = [int(w["pid"]) for w in info.get("workers", []) if w.get("pid")]
    workers = []
    frontend = None
    for pid in worker_pids:
        try:
            process = psutil.Process(pid)
            workers.append(process.memory_info().rss)
            parent = process.parent()
            if parent and parent.name() == "java":
                frontend = parent.memory_info().rss
        except psutil.Error:
            pass
    mb = 1024 * 1024
    total = sum(workers) + (frontend or 0)
    return {"frontend_mb": round((frontend or 0) / mb), "workers_mb": [round(w / mb) for w in workers],
            "total_mb": round(total / mb)}


# ------------------------------------------------------------------------- reporting
def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": available_cpus(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__}


def markdown(report: dict) -> str:
    lines = [f"# Benchmark ({report['label']})", "",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
             f"{report['machine']['memory_gb']} GB; torch {report['machine']['torch']}.", "",
             f"Settings: {json.dumps(report['settings'])}", ""]
    if report.get("cold_start_s") is not None:
        lines += [f"Cold start to a 200 /health: **{report['cold_start_s']:.1f} s**", ""]
    if report.get("memory"):
        m = report["memory"]
        lines += [f"RSS: frontend {m['frontend_mb']} MB, workers {m['workers_mb']} MB, total **{m['total_mb']} MB**", ""]
    lines += ["| concurrency | req/s | p50 ms | p95 ms | p99 ms | requests | errors |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    for level in report["levels"]:
        lines.append(f"| {level['concurrency']} | {level['req_per_s']} | {level['p50_ms']} | {level['p95_ms']} | "
                     f"{level['p99_ms']} | {level['requests']} | {level['errors'] or '-'} |")
    if report.get("stock_levels"):
        lines += ["", "Stock TorchServe `image_classifier` handler, same weights, same load, same run, both "
                  f"services up and taking turns at each level ({report.get('rounds', 1)} turns each, "
                  "alternating who goes first; its defaults: 1 worker, no batching, default threads; no proxy):", "",
                  "| concurrency | stock req/s | stock p99 ms | this service req/s | ratio |", "|---:|---:|---:|---:|---:|"]
        spreads = report.get("rounds_ratio") or [[] for _ in report["levels"]]
        lines[-2] = lines[-2].replace("ratio |", "ratio | ratio per round |")
        lines[-1] += "---|"
        for ours, stock, spread in zip(report["levels"], report["stock_levels"], spreads):
            ratio = ours["req_per_s"] / stock["req_per_s"] if stock["req_per_s"] else float("nan")
            rounds = ", ".join(f"{r:.2f}" for r in spread if r is not None) or "-"
            lines.append(f"| {stock['concurrency']} | {stock['req_per_s']} | {stock['p99_ms']} | "
                         f"{ours['req_per_s']} | **{ratio:.2f}x** | {rounds} |")
    if report.get("variants"):
        names = [v["label"] for v in report["variants"]]
        stock = {lv["concurrency"]: lv["req_per_s"] for lv in report.get("stock_levels", [])}
        lines += ["", "Other settings, each a private instance of its own, up for the whole sweep and taking "
                  "turns with the others at every level (req/s, p99 ms, and ÷ stock where it ran):", "",
                  "| concurrency | this service (default) | " + " | ".join(f"`{n}`" for n in names) + " |",
                  "|---:|" + "---:|" * (len(names) + 1)]

        def cell(level: dict) -> str:
            base = stock.get(level["concurrency"])
            ratio = f", **{level['req_per_s'] / base:.2f}×**" if base else ""
            return f"{level['req_per_s']} (p99 {level['p99_ms']:.0f}{ratio})"

        for i, ours in enumerate(report["levels"]):
            lines.append(f"| {ours['concurrency']} | {cell(ours)} | "
                         + " | ".join(cell(v["levels"][i]) for v in report["variants"]) + " |")
    if report.get("in_process"):
        ip = report["in_process"]
        lines += ["", f"In-process, same backend ({ip['backend']['name']}, {ip['backend']['precision']}, "
                  f"{ip['threads']} threads):", "", "| batch | model only img/s | decode+transform+model img/s |",
                  "|---:|---:|---:|"]
        for batch, value in ip["model_only"].items():
            lines.append(f"| {batch} | {value} | {ip['pipeline'][batch]} |")
        best_served = max(level["req_per_s"] for level in report["levels"])
        best_model = max(ip["model_only"].values())
        lines += ["", f"Best served req/s ÷ best in-process model-only img/s = **{best_served / best_model:.2f}**"]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    levels = report["levels"]
    x = [level["concurrency"] for level in levels]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(x, [level["req_per_s"] for level in levels], "o-", color="tab:blue", label="this service (default) req/s")
    for variant, colour in zip(report.get("variants", []), ["tab:green", "tab:orange", "tab:purple", "tab:brown",
                                                            "tab:olive", "tab:cyan"]):
        left.plot(x, [level["req_per_s"] for level in variant["levels"]], "o-.", color=colour,
                  label=f"{variant['label']} req/s")
    if report.get("stock_levels"):
        left.plot(x, [level["req_per_s"] for level in report["stock_levels"]], "o:", color="tab:gray",
                  label="stock handler req/s")
    if report.get("stock_levels") or report.get("variants"):
        left.legend(loc="center left", fontsize="small")
    left.set_xscale("log", base=2)
    left.set_xlabel("concurrent clients")
    left.set_ylabel("req/s", color="tab:blue")
    right = left.twinx()
    right.plot(x, [level["p99_ms"] for level in levels], "s--", color="tab:red", label="p99 ms")
    right.set_ylabel("p99 latency (ms)", color="tab:red")
    left.set_title(f"Served through nginx: {report['label']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service (default: --start a private one)")
    parser.add_argument("--start", action="store_true", help="start a private instance and measure cold start")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32")
    parser.add_argument("--requests", type=int, default=200, help="requests per level (bound)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per level (bound)")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--stock", action="store_true",
                        help="also load TorchServe's stock image_classifier on the same weights, same sweep")
    parser.add_argument("--rounds", type=int, default=2,
                        help="split each level into this many turns per service (with --stock they alternate)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also start a private instance with these settings (e.g. BACKEND=torchscript) and "
                             "give it turns at every level beside the others; repeatable")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    parser.add_argument("--label", default="default settings")
    args = parser.parse_args(argv)
    try:
        variants = {spec: dict(pair.split("=", 1) for pair in spec.split(",")) for spec in args.variant}
    except ValueError:
        parser.error("--variant takes KEY=VALUE pairs separated by commas")
    if variants and args.url:
        parser.error("--variant starts private instances: use it with --start, not --url")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop what we started

    settings = load_settings()
    instance = None
    cold_start = None
    if args.url:
        url = args.url.rstrip("/")
        if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("the benchmark only targets loopback addresses")
    image = sample_image()
    archive = Path(settings["MODEL_STORE"]) / f"{settings['MODEL_NAME']}.mar"
    stock = StockInstance(archive) if args.stock else None
    levels, stock_levels, ratios = [], [], []
    variant_instances: dict[str, PrivateInstance] = {}
    variant_levels: dict[str, list[dict]] = {spec: [] for spec in variants}
    try:
        if not args.url:
            instance = PrivateInstance({})
            print("starting a private instance...", flush=True)
            cold_start = instance.start()
            url = instance.url
            print(f"cold start to a 200 /health: {cold_start:.1f} s", flush=True)
        if stock:
            # Both stay up for the whole sweep and take turns at each level (the idle one costs
            # next to nothing), so a drift in this machine's speed hits both sides of a ratio.
            print("starting stock TorchServe (image_classifier handler, defaults)...", flush=True)
            stock.start(image)
        for spec, extra_env in variants.items():
            print(f"starting a private instance with {spec}...", flush=True)
            variant_instances[spec] = PrivateInstance(extra_env)
            variant_instances[spec].start()
        targets = ({"ours": url + "/predict"} | {spec: i.url + "/predict" for spec, i in variant_instances.items()}
                   | ({"stock": stock.url} if stock else {}))
        for target in targets.values():
            for _ in range(5):  # warm-up
                requests.post(target, data=image, timeout=60)
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            rounds: dict[str, list[dict]] = {name: [] for name in targets}
            for round_index in range(args.rounds):
                order = list(targets) if round_index % 2 == 0 else list(targets)[::-1]
                for name in order:
                    rounds[name].append(run_level(targets[name], image, concurrency,
                                                  max(1, args.requests // args.rounds), args.seconds / args.rounds))
            level = pool_rounds(rounds["ours"])
            levels.append(level)
            line = (f"c={concurrency:>2}: {level['req_per_s']:6.2f} req/s  p50 {level['p50_ms']:7.1f} ms  "
                    f"p99 {level['p99_ms']:7.1f} ms  errors {level['errors'] or '-'}")
            if stock:
                stock_level = pool_rounds(rounds["stock"])
                stock_levels.append(stock_level)
                ratios.append([round(o["req_per_s"] / theirs["req_per_s"], 2) if theirs["req_per_s"] else None
                               for o, theirs in zip(rounds["ours"], rounds["stock"])])
                line += f"  | stock {stock_level['req_per_s']:6.2f} req/s  p99 {stock_level['p99_ms']:7.1f} ms"
            for spec in variants:
                variant_levels[spec].append(pool_rounds(rounds[spec]))
                line += f"  | {spec} {variant_levels[spec][-1]['req_per_s']:6.2f} req/s"
            print(line, flush=True)
        variant_runtime = {spec: requests.get(i.url + "/info", timeout=10).json()["default"][0]["customizedMetadata"]
                           ["runtime"] for spec, i in variant_instances.items()}
        memory = service_memory(url)
        described = requests.get(url + "/info", timeout=10).json()["default"][0]
    finally:
        if stock:
            stock.stop()
        for variant in variant_instances.values():
            variant.stop()
        if instance:
            instance.stop()
    runtime = described["customizedMetadata"]["runtime"]
    report = {
        "label": args.label, "machine": machine(), "cold_start_s": cold_start, "memory": memory, "levels": levels,
        "rounds": args.rounds,
        "settings": {"workers": len(described["workers"]), "batch_size": described["batchSize"],
                     "max_batch_delay_ms": described["maxBatchDelay"], "backend": runtime["name"],
                     "precision": runtime["precision"], "threads_per_worker": runtime["threads_per_worker"]},
    }
    if stock:
        report["stock_levels"] = stock_levels
        report["rounds_ratio"] = ratios
    if variants:
        report["variants"] = [{"label": spec, "env": variants[spec], "runtime": variant_runtime[spec],
                               "levels": variant_levels[spec]} for spec in variants]
    if not args.skip_in_process:
        print("in-process baseline...", flush=True)
        report["in_process"] = model_only(archive, runtime["name"], runtime["precision"],
                                          sorted({1, int(described["batchSize"])}), image)
    for level in report["levels"] + report.get("stock_levels", []) + [
            lv for variant in report.get("variants", []) for lv in variant["levels"]]:
        level.pop("_latencies", None)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "benchmark.json").write_text(json.dumps(report, indent=2))
    (args.out_dir / "benchmark.md").write_text(markdown(report))
    plotted = plot(report, args.out_dir / "benchmark.png")
    print(markdown(report))
    print(f"wrote {args.out_dir}/benchmark.json, benchmark.md" + (", benchmark.png" if plotted else
                                                                  " (no plot: matplotlib not installed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
