#!/usr/bin/env python3
"""Soak: a long, bounded run at a steady share of capacity, watching memory and latency over time.

    python -m scripts.bench.soak --start                      a private instance; 30 minutes at 70 %
    python -m scripts.bench.soak --url http://127.0.0.1:5000 --run-dir .run/5000
    ... --minutes 30 --load 0.7 --capacity 8.5 --out docs/benchmarks/soak

1. Capacity: closed loop at --capacity-concurrency clients over the same mix of images (unless --capacity
   gives it), measured first.
2. Open loop at --load x capacity for --minutes: Poisson arrivals, each request one image drawn (seeded)
   from a mix of sizes and formats; latency from each request's intended send time (no coordinated
   omission, as scripts/bench/loadgen.py).
3. Every --sample-seconds, the RSS of every process of the instance (supervisor, TorchServe's launcher,
   JVM, worker(s), nginx; scripts/bench/process_tree.py).

Verdict, with the first fifth of the run as warm-up: the instance's RSS grows by at most 5 % from the
second fifth to the last (medians of the samples in each); every answer is a 200; the p99 latency of the
last fifth is at most 1.5x that of the second fifth. Writes soak.json (summary and timeline), soak.csv
(one row per sample) and soak.png (RSS and p99 over time). Exit 0 when the verdict passes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from scripts.bench.loadgen import arrival_offsets, percentile
from scripts.bench.machine import cpu_description
from scripts.bench.process_tree import snapshot, split_rss, supervisor_pid

RSS_GROWTH_LIMIT = 0.05
P99_GROWTH_LIMIT = 1.5
FIFTHS = 5


# --------------------------------------------------------------------------- the images
def image_mix(seed: int = 0) -> list[tuple[str, bytes, str]]:
    """(name, bytes, content type) of the request mix: the sizes and formats clients send."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)

    def picture(width: int, height: int) -> Image.Image:
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1)
        return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))

    def encoded(image: Image.Image, fmt: str, **options) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    return [
        ("jpeg_640x480", encoded(picture(640, 480), "JPEG", quality=90), "image/jpeg"),
        ("jpeg_1920x1080", encoded(picture(1920, 1080), "JPEG", quality=85), "image/jpeg"),
        ("jpeg_224x224", encoded(picture(224, 224), "JPEG", quality=90), "image/jpeg"),
        ("png_rgba_320x240", encoded(picture(320, 240).convert("RGBA"), "PNG"), "image/png"),
        ("webp_512x512", encoded(picture(512, 512), "WEBP", quality=80), "image/webp"),
    ]


# ---------------------------------------------------------------------------- the run
@dataclass
class Sample:
    """The instance's memory at ``t`` seconds into the run."""

    t: float
    total_rss_mb: float
    parts: dict[str, float]
    processes: list[dict] = field(default_factory=list)


@dataclass
class Outcome:
    t: float  # intended send time, seconds into the run
    latency_s: float  # from the intended send time
    status: int
    image: str


def sample_memory(pid: int, t: float) -> Sample | None:
    memory = split_rss(snapshot(pid), pid)
    if not memory["process_count"]:
        return None
    parts = {name: part["rss_mb"] for name, part in memory["parts"].items()}
    processes = [{"part": name, **process} for name, part in memory["parts"].items() for process in part["processes"]]
    return Sample(t=round(t, 2), total_rss_mb=memory["total_rss_mb"], parts=parts, processes=processes)


def run_soak(url: str, pid: int | None, rate: float, seconds: float, images: list[tuple[str, bytes, str]],
             sample_every: float = 10.0, senders: int = 32, seed: int = 0, timeout: float = 60.0,
             progress=print) -> tuple[list[Outcome], list[Sample]]:
    """Open loop at ``rate`` for ``seconds``; memory sampled every ``sample_every`` s meanwhile."""
    offsets = arrival_offsets(rate, max_requests=10**9, max_seconds=seconds, arrivals="poisson", seed=seed)
    choice = random.Random(seed)
    picks = [images[choice.randrange(len(images))] for _ in offsets]
    outcomes: list[Outcome] = []
    samples: list[Sample] = []
    lock = threading.Lock()
    cursor = [0]
    done = threading.Event()
    start = time.monotonic() + 0.1

    def sender() -> None:
        session = requests.Session()
        while True:
            with lock:
                index = cursor[0]
                cursor[0] += 1
            if index >= len(offsets):
                return
            intended = start + offsets[index]
            time.sleep(max(0.0, intended - time.monotonic()))
            name, body, content_type = picks[index]
            try:
                status = session.post(url + "/predict", data=body, headers={"Content-Type": content_type},
                                      timeout=timeout).status_code
            except requests.RequestException:
                status = 0
            finished = time.monotonic()
            with lock:
                outcomes.append(Outcome(round(offsets[index], 3), finished - intended, status, name))

    def sampler() -> None:
        next_at = start
        while not done.is_set():
            if pid is not None:
                sample = sample_memory(pid, time.monotonic() - start)
                if sample:
                    samples.append(sample)
                    with lock:
                        answered = len(outcomes)
                    progress(f"  t={sample.t:7.1f} s  rss {sample.total_rss_mb:8.1f} MB  answers {answered}")
            next_at += sample_every
            done.wait(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(min(senders, max(1, len(offsets))))]
    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join(timeout=sample_every + 30)
    if pid is not None:
        last = sample_memory(pid, time.monotonic() - start)
        if last:
            samples.append(last)
    return sorted(outcomes, key=lambda o: o.t), samples


def mixed_capacity(url: str, images: list[tuple[str, bytes, str]], concurrency: int, seconds: float,
                   seed: int = 1) -> float:
    """Closed loop over the same mix of images the soak sends: 200s per second at ``concurrency``."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    ok = [0]

    def client(index: int) -> None:
        session = requests.Session()
        choice = random.Random(seed + index)
        while time.monotonic() < deadline:
            _, body, content_type = images[choice.randrange(len(images))]
            try:
                status = session.post(url + "/predict", data=body, headers={"Content-Type": content_type},
                                      timeout=60).status_code
            except requests.RequestException:
                continue
            if status == 200:
                with lock:
                    ok[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 90)
    return ok[0] / (time.monotonic() - started)


# ---------------------------------------------------------------------------- the verdict
def fifth_bounds(seconds: float, index: int) -> tuple[float, float]:
    return seconds * index / FIFTHS, seconds * (index + 1) / FIFTHS


def median(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def p99_ms(outcomes: list[Outcome]) -> float | None:
    latencies = [o.latency_s for o in outcomes if o.status == 200]
    return round(percentile(latencies, 99) * 1000, 1) if latencies else None


def verdict(outcomes: list[Outcome], samples: list[Sample], seconds: float) -> dict:
    """The three criteria of the module doc, with their figures (pure: tested without a service)."""
    second, last = fifth_bounds(seconds, 1), fifth_bounds(seconds, FIFTHS - 1)

    def within(bounds: tuple[float, float], t: float) -> bool:
        return bounds[0] <= t < bounds[1] or (bounds[1] == seconds and t >= bounds[0])

    rss_second = median([s.total_rss_mb for s in samples if within(second, s.t)])
    rss_last = median([s.total_rss_mb for s in samples if within(last, s.t)])
    growth = None if not rss_second or rss_last is None else rss_last / rss_second - 1
    parts = sorted({name for s in samples for name in s.parts})
    part_growth = {}
    for name in parts:
        a = median([s.parts[name] for s in samples if within(second, s.t) and name in s.parts])
        b = median([s.parts[name] for s in samples if within(last, s.t) and name in s.parts])
        part_growth[name] = {"second_fifth_mb": a, "last_fifth_mb": b,
                             "growth": None if not a or b is None else round(b / a - 1, 4)}
    p99_second = p99_ms([o for o in outcomes if within(second, o.t)])
    p99_last = p99_ms([o for o in outcomes if within(last, o.t)])
    p99_ratio = None if not p99_second or p99_last is None else round(p99_last / p99_second, 3)
    statuses = Counter(o.status for o in outcomes)
    checks = {
        "rss_growth_at_most_5_percent": growth is not None and growth <= RSS_GROWTH_LIMIT,
        "only_200s": bool(outcomes) and set(statuses) == {200},
        "p99_last_fifth_at_most_1_5x_second": p99_ratio is not None and p99_ratio <= P99_GROWTH_LIMIT,
    }
    return {
        "passed": all(checks.values()), "checks": checks,
        "rss_second_fifth_mb": rss_second, "rss_last_fifth_mb": rss_last,
        "rss_growth": None if growth is None else round(growth, 4), "rss_growth_by_part": part_growth,
        "p99_second_fifth_ms": p99_second, "p99_last_fifth_ms": p99_last, "p99_ratio": p99_ratio,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def p99_per_window(outcomes: list[Outcome], seconds: float, window: float = 60.0) -> list[dict]:
    """p99 and throughput per window of the run (the picture's lower panel)."""
    rows = []
    start = 0.0
    while start < seconds:
        inside = [o for o in outcomes if start <= o.t < start + window]
        rows.append({"t_mid": round(start + min(window, seconds - start) / 2, 1), "requests": len(inside),
                     "p99_ms": p99_ms(inside), "errors": sum(1 for o in inside if o.status != 200)})
        start += window
    return rows


# ---------------------------------------------------------------------------- output
def write_outputs(out: Path, report: dict, samples: list[Sample], windows: list[dict]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    parts = sorted({name for s in samples for name in s.parts})
    with (out / "soak.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "total_rss_mb", *[f"{name}_rss_mb" for name in parts]])
        for s in samples:
            writer.writerow([s.t, s.total_rss_mb, *[s.parts.get(name, "") for name in parts]])
    written = [out / "soak.json", out / "soak.csv"]
    if plot(out / "soak.png", report, samples, windows):
        written.append(out / "soak.png")
    return written


def plot(path: Path, report: dict, samples: list[Sample], windows: list[dict]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (memory, latency) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    minutes = [s.t / 60 for s in samples]
    memory.plot(minutes, [s.total_rss_mb for s in samples], label="whole instance", linewidth=2)
    for name in sorted({name for s in samples for name in s.parts}):
        memory.plot(minutes, [s.parts.get(name) for s in samples], label=name, linewidth=1)
    memory.set_ylabel("RSS (MB)")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize=8, ncol=3)
    memory.grid(alpha=0.3)
    latency.plot([w["t_mid"] / 60 for w in windows], [w["p99_ms"] for w in windows], marker="o", markersize=3)
    latency.set_ylabel("p99 latency per minute (ms)")
    latency.set_xlabel("minutes into the run")
    latency.set_ylim(bottom=0)
    latency.grid(alpha=0.3)
    seconds = report["seconds"]
    for axis in (memory, latency):
        axis.axvspan(0, seconds / FIFTHS / 60, color="grey", alpha=0.12)  # the warm-up fifth
    verdict_text = "PASS" if report["verdict"]["passed"] else "FAIL"
    figure.suptitle(f"Soak: {report['load']:.0%} of {report['capacity_rps']:.2f} req/s for {seconds / 60:.0f} min "
                    f"({report['machine']['cpu']}, {report['machine']['cores']} cores): {verdict_text}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


# ---------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--start", action="store_true", help="start a private instance (free loopback ports)")
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:5000")
    parser.add_argument("--run-dir", type=Path, help="the running service's RUN_DIR (for its pid), with --url")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the measured capacity")
    parser.add_argument("--capacity", type=float, help="req/s; default: measured first (closed loop)")
    parser.add_argument("--capacity-concurrency", type=int, default=8)
    parser.add_argument("--capacity-seconds", type=float, default=60.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/soak"))
    args = parser.parse_args(argv)
    if not 0 < args.load <= 1 or args.minutes <= 0:
        parser.error("--load must be in (0, 1] and --minutes positive")

    from scripts.bench.benchmark import PrivateInstance

    instance = None
    if args.start:
        instance = PrivateInstance({})
        print(f"starting a private instance (RUN_DIR {instance.run_dir})")
        instance.start()
        url, pid = instance.url, instance.pid
    else:
        url = args.url.rstrip("/")
        pid = supervisor_pid(args.run_dir) if args.run_dir else None
        if pid is None:
            print("no supervisor pid (pass --run-dir of the running service): memory is not sampled")
    try:
        images = image_mix()
        for _, body, content_type in images:  # warm-up: every shape once
            requests.post(url + "/predict", data=body, headers={"Content-Type": content_type}, timeout=120)
        capacity = args.capacity
        if capacity is None:
            capacity = mixed_capacity(url, images, args.capacity_concurrency, args.capacity_seconds)
            print(f"capacity: {capacity:.2f} req/s at c={args.capacity_concurrency} (the same mix of images)")
        rate = args.load * capacity
        seconds = args.minutes * 60
        print(f"soak: {rate:.2f} req/s ({args.load:.0%} of {capacity:.2f}) for {args.minutes:g} min")
        outcomes, samples = run_soak(url, pid, rate, seconds, images, args.sample_seconds)
    finally:
        if instance:
            instance.stop()
    windows = p99_per_window(outcomes, seconds)
    result = verdict(outcomes, samples, seconds)
    report = {
        "machine": cpu_description(), "url": url, "capacity_rps": capacity, "load": args.load,
        "rate_rps": round(rate, 3), "seconds": seconds, "requests": len(outcomes),
        "images": [name for name, _, _ in images], "verdict": result, "windows": windows,
        "samples": [{"t": s.t, "total_rss_mb": s.total_rss_mb, "parts": s.parts} for s in samples],
        "command": "python -m scripts.bench.soak " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    written = write_outputs(args.out, report, samples, windows)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_growth_by_part"}, indent=1))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
