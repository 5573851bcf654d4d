"""The benchmark's load generation, apart from any service: arrival schedules, an open-loop
runner, percentiles, the generator's own CPU time, and the CSV / JSON writers.

Open loop: requests are sent at times fixed in advance (a Poisson process or a fixed interval at
the requested rate), whether or not earlier ones have been answered, and every latency is taken
from the request's *intended* send time. A sender that is late because all senders were busy
therefore counts its wait in the latency, as a real client's user would see it, instead of
silently sending less (coordinated omission). Everything here is bounded in count and time.
"""

from __future__ import annotations

import csv
import json
import math
import random
import resource
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

ARRIVALS = ("poisson", "fixed")
LATENCY_NOTE = ("open loop: latency measured from each request's intended send time "
                "(no coordinated omission); percentiles are nearest-rank")


# --------------------------------------------------------------------------- schedule
def arrival_offsets(rate: float, max_requests: int, max_seconds: float, arrivals: str = "poisson",
                    seed: int = 0) -> list[float]:
    """Intended send times, in seconds from the level's start, for ``rate`` requests per second.

    ``fixed``: one every 1/rate s, starting at 0. ``poisson``: exponential gaps of mean 1/rate
    (a seeded generator, so every target of one run gets the same arrivals). At most
    ``max_requests`` of them, all before ``max_seconds``."""
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number, not {rate!r}")
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")
    if max_requests < 0 or max_seconds < 0:
        raise ValueError("the bounds must not be negative")
    rng = random.Random(seed)
    offsets: list[float] = []
    at = 0.0
    while len(offsets) < max_requests:
        if arrivals == "fixed":
            at = len(offsets) / rate
        elif offsets:
            at += rng.expovariate(rate)
        if at >= max_seconds:
            break
        offsets.append(at)
    return offsets


def parse_fractions(text: str) -> list[float]:
    """``"0.5,0.8,1"`` or ``"50%,80%,100%"`` -> [0.5, 0.8, 1.0]; each in (0, 5]."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        if not 0 < value <= 5:
            raise ValueError(f"a fraction of capacity must be in (0, 5], not {part!r}")
        values.append(value)
    if not values:
        raise ValueError("no fractions given")
    return values


def parse_rates(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(not v > 0 or not math.isfinite(v) for v in values):
        raise ValueError("--rates takes positive requests per second, e.g. 5,10")
    return values


# ---------------------------------------------------------------------------- statistics
def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q % of all values at or below
    it (the convention of wrk/HdrHistogram reports; never interpolates below a real sample)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if not 0 <= q <= 100:
        raise ValueError("q must be within [0, 100]")
    # in integer arithmetic: q * n / 100 in floating point can land a hair above an integer
    rank = -(-round(q * 1000) * len(ordered) // 100_000)
    return ordered[min(len(ordered), max(1, rank)) - 1]


def percentile_ratio_interval(numerator_turns: list[list[float]], denominator_turns: list[list[float]],
                              q: float = 99, confidence: float = 0.90, resamples: int = 2000, seed: int = 0
                              ) -> tuple[float, float] | None:
    """A bootstrap interval of the ratio of two targets' q-th percentile latencies, from their turns.

    Why: a p99 of a few hundred calls is their few slowest, and this machine's speed drifts from
    minute to minute, so one run's p99 ratio has swung from 0.71 to 1.17 with nothing changed.
    The targets took turns (turn i of one beside turn i of the other), so whole turns are
    resampled in pairs: the interval carries both the drift between turns and the few calls in a
    tail, and each resample compares the two targets over the same minutes. Seeded, so a report is
    reproducible from its latencies. None when there is no pair of turns with calls on both sides."""
    pairs = [(top, bottom) for top, bottom in zip(numerator_turns, denominator_turns) if top and bottom]
    if not pairs:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        drawn = rng.choices(pairs, k=len(pairs))
        bottom = percentile([v for _, side in drawn for v in side], q)
        if bottom > 0:
            ratios.append(percentile([v for side, _ in drawn for v in side], q) / bottom)
    if not ratios:
        return None
    tail = (1 - confidence) / 2 * 100
    return percentile(ratios, tail), percentile(ratios, 100 - tail)


def latency_summary(latencies: list[float], prefix: str = "") -> dict:
    """p50/p90/p95/p99/max in milliseconds (None where there is no sample)."""
    out = {}
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("max", 100)):
        value = percentile(latencies, q)
        out[f"{prefix}{name}_ms"] = None if math.isnan(value) else round(value * 1000, 1)
    return out


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all its threads (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------- open loop
def run_open_level(make_sender: Callable[[], Callable[[], int]], rate: float, max_requests: int,
                   max_seconds: float, arrivals: str = "poisson", seed: int = 0, max_inflight: int = 64,
                   late_ms: float = 10.0, max_lateness_s: float = 2.0,
                   clock: Callable[[], float] = time.monotonic) -> dict:
    """Send at ``rate`` req/s on the schedule of :func:`arrival_offsets`.

    ``make_sender()`` is called once per sender thread and returns a function that sends one
    request and returns its HTTP status (0 for a transport error). ``max_inflight`` senders at
    most: a request whose time comes while all of them wait for answers goes out late, and its
    latency (from the intended time) includes that wait. A send more than ``late_ms`` after its
    time counts as *late*; one that could not start within ``max_lateness_s`` of its time is not
    sent and counts as *dropped* (the level then ends within max_seconds + max_lateness_s + the
    sender's own timeout)."""
    offsets = arrival_offsets(rate, max_requests, max_seconds, arrivals, seed)
    latencies: list[float] = []
    service_times: list[float] = []
    statuses: Counter = Counter()
    counts = {"late": 0, "dropped": 0, "sent": 0}
    lock = threading.Lock()
    cursor = [0]
    last_done = [0.0]
    cpu_before = cpu_seconds()
    start = clock() + 0.05  # every thread is up before the first intended send

    def sender_loop() -> None:
        send = make_sender()
        while True:
            with lock:
                index = cursor[0]
                cursor[0] += 1
            if index >= len(offsets):
                return
            intended = start + offsets[index]
            wait = intended - clock()
            if wait > 0:
                time.sleep(wait)
            began = clock()
            lateness = began - intended
            if lateness > max_lateness_s:
                with lock:
                    counts["dropped"] += 1
                continue
            try:
                status = int(send())
            except Exception:  # noqa: BLE001 - a failed send is an error of the level, not of the run
                status = 0
            done = clock()
            with lock:
                counts["sent"] += 1
                if lateness * 1000 > late_ms:
                    counts["late"] += 1
                statuses[status] += 1
                if status == 200:
                    latencies.append(done - intended)
                    service_times.append(done - began)
                last_done[0] = max(last_done[0], done)

    threads = [threading.Thread(target=sender_loop, daemon=True)
               for _ in range(max(1, min(max_inflight, len(offsets))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = cpu_seconds() - cpu_before
    # The level's window: until the next arrival after the last one (n arrivals at rate r take
    # n / r seconds), or the time bound where that cut the schedule; longer when answers
    # came later than that.
    window = min(max_seconds, offsets[-1] + 1 / rate) if offsets else 0.0
    wall = max(window, last_done[0] - start) if offsets else 0.0
    ok = statuses.get(200, 0)
    result = {
        "mode": "open", "arrivals": arrivals, "target_rps": round(rate, 3),
        "scheduled": len(offsets), "sent": counts["sent"], "ok": ok,
        "errors": {str(k): v for k, v in sorted(statuses.items()) if k != 200},
        "dropped": counts["dropped"], "late": counts["late"], "seconds": round(wall, 3),
        # offered: what the schedule asked for over its window; achieved: answers per second
        # over the window or until the last answer, whichever is longer
        "offered_rps": round(len(offsets) / window, 3) if window > 0 else None,
        "achieved_rps": round(ok / wall, 3) if wall > 0 else 0.0,
        **latency_summary(latencies), **latency_summary(service_times, "service_"),
        "loadgen_cpu_s": round(cpu, 3), "loadgen_cores": round(cpu / wall, 3) if wall > 0 else None,
        "_latencies": latencies, "_service_times": service_times,
    }
    return result


def pool_open_rounds(rounds: list[dict]) -> dict:
    """One open-loop level's turns as one: counts summed, achieved rate over all their time,
    percentiles over all latencies, and the per-turn achieved rates."""
    first = rounds[0]
    latencies = [v for level in rounds for v in level["_latencies"]]
    service_times = [v for level in rounds for v in level["_service_times"]]
    errors: Counter = Counter()
    for level in rounds:
        errors.update(level["errors"])
    seconds = sum(level["seconds"] for level in rounds)
    ok = sum(level["ok"] for level in rounds)
    cpu = sum(level["loadgen_cpu_s"] for level in rounds)
    pooled = {
        "mode": "open", "arrivals": first["arrivals"], "target_rps": first["target_rps"],
        **{key: sum(level[key] for level in rounds) for key in ("scheduled", "sent", "ok", "dropped", "late")},
        "errors": dict(sorted(errors.items())), "seconds": round(seconds, 3),
        "achieved_rps": round(ok / seconds, 3) if seconds else 0.0,
        **latency_summary(latencies), **latency_summary(service_times, "service_"),
        "loadgen_cpu_s": round(cpu, 3), "loadgen_cores": round(cpu / seconds, 3) if seconds else None,
        "rounds_achieved_rps": [level["achieved_rps"] for level in rounds],
    }
    for key in ("fraction", "capacity_rps"):
        if key in first:
            pooled[key] = first[key]
    pooled.update(pool_service_cpu(rounds))
    return pooled


def pool_service_cpu(rounds: list[dict]) -> dict:
    """The services' CPU seconds summed over turns (absent where it was not measured)."""
    if "service_cpu_s" not in rounds[0]:
        return {}
    values = [level.get("service_cpu_s") for level in rounds]
    return {"service_cpu_s": None if None in values else round(sum(values), 3)}


# ---------------------------------------------------------------------------- output
CSV_FIELDS = [
    "target", "mode", "concurrency", "fraction", "capacity_rps", "target_rps", "arrivals", "requests",
    "sent", "ok", "errors", "dropped", "late", "seconds", "throughput_rps", "p50_ms", "p90_ms", "p95_ms",
    "p99_ms", "max_ms", "loadgen_cpu_s", "loadgen_cores", "service_cpu_s",
]


def _targets(report: dict) -> list[tuple[str, dict]]:
    """(service name, {"closed": levels, "open": levels}) for every service of a report."""
    opened = report.get("open_loop", {}).get("targets", {})
    blocks = [("default", {"closed": report.get("levels", []), "open": opened.get("default", [])})]
    for variant in report.get("variants", []):
        blocks.append((variant["label"], {"closed": variant.get("levels", []), "open": opened.get(variant["label"], [])}))
    for name, key in (("stock", "stock_levels"), ("kserve", "peer_levels")):
        if key in report or name in opened:
            blocks.append((name, {"closed": report.get(key, []), "open": opened.get(name, [])}))
    for name, levels in report.get("protocols", {}).items():  # --protocols v2-http,v2-grpc (same instance)
        blocks.append((name, {"closed": levels, "open": opened.get(name, [])}))
    return blocks


def csv_rows(report: dict) -> list[dict]:
    """One row per service and level, closed and open loop alike, in CSV_FIELDS."""
    rows = []
    for name, block in _targets(report):
        for level in block["closed"]:
            rows.append({
                "target": name, "mode": "closed", "concurrency": level.get("concurrency"),
                "requests": level.get("requests"), "sent": level.get("requests"), "ok": level.get("ok"),
                "errors": sum(level.get("errors", {}).values()), "seconds": level.get("seconds"),
                "throughput_rps": level.get("req_per_s"),
                **{k: level.get(k) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "loadgen_cpu_s",
                                             "loadgen_cores", "service_cpu_s")},
            })
        for level in block["open"]:
            rows.append({
                "target": name, "mode": "open", "requests": level.get("scheduled"),
                "errors": sum(level.get("errors", {}).values()), "throughput_rps": level.get("achieved_rps"),
                **{k: level.get(k) for k in ("fraction", "capacity_rps", "target_rps", "arrivals", "sent", "ok",
                                             "dropped", "late", "seconds", "p50_ms", "p90_ms", "p95_ms",
                                             "p99_ms", "max_ms", "loadgen_cpu_s", "loadgen_cores",
                                             "service_cpu_s")},
            })
    return [{field: ("" if row.get(field) is None else row.get(field)) for field in CSV_FIELDS} for row in rows]


def write_csv(path: Path, report: dict) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = csv_rows(report)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def public(value):
    """A copy without the private per-sample lists (keys starting with "_") and with NaN and
    infinities as None, so the JSON is strict (json.loads of other languages rejects NaN)."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [public(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, report: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(public(report), indent=2, allow_nan=False) + "\n")
