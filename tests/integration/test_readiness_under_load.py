"""Readiness that does not cascade: under 40 concurrent /predict clients (more than MAX_INFLIGHT, so
nginx sheds some with 503 overloaded), GET /health keeps answering 200 faster than one inference takes
on the idle machine (measured first, in the same test, so a slower CPU moves the bound with it): it is
answered from the management API's worker states (scripts/service/readiness.py), never through
TorchServe's job queue. The old deep check (/health?deep=1, through the queue) is measured beside it for contrast,
GET /live stays 200, and the queue-depth gauge on /metrics sees the queued work."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import jpeg_bytes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 40
DURATION_S = 25.0
PROBE_INTERVAL_S = 0.1
# A probe must answer within this many idle inferences: a probe that waited for the model's queue would
# take many (every queued request ahead of it), one answered beside the model a small fraction of one.
PROBE_DEADLINE_INFERENCES = 2.0
IMAGE = jpeg_bytes(640, 480, seed=21)


def idle_inference_s(service) -> float:
    """One /predict on the idle service (the best of three, after a warm-up)."""
    requests.post(service.url("/predict"), data=IMAGE, timeout=60)
    timings = []
    for _ in range(3):
        started = time.monotonic()
        assert requests.post(service.url("/predict"), data=IMAGE, timeout=60).status_code == 200
        timings.append(time.monotonic() - started)
    return min(timings)


def test_readiness_answers_fast_under_40_clients(service):
    probe_deadline_s = PROBE_DEADLINE_INFERENCES * idle_inference_s(service)
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: Counter = Counter()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(service.url("/predict"), data=IMAGE, timeout=60)
            except requests.RequestException:
                with lock:
                    outcomes["no_answer"] += 1
                continue
            with lock:
                outcomes[response.status_code] += 1
            if response.status_code != 200:
                time.sleep(0.25)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)  # let the queue fill: every worker busy, nginx shedding the excess
    probes: list[tuple[int, float]] = []
    deep: list[tuple[int, float]] = []
    live: list[int] = []
    queue_depths: list[float] = []

    def slow_prober() -> None:  # the queued check and liveness, beside the readiness probes
        while not stop.is_set():
            started = time.monotonic()
            deep.append((requests.get(service.url("/health?deep=1"), timeout=5).status_code,
                         time.monotonic() - started))
            live.append(requests.get(service.url("/live"), timeout=5).status_code)
            metrics = requests.get(service.url("/metrics"), timeout=5).text
            queue_depths.extend(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                                if s.name == "resnet50_queue_depth")
            time.sleep(1.0)

    prober = threading.Thread(target=slow_prober, daemon=True)
    prober.start()
    session = requests.Session()
    deadline = time.monotonic() + DURATION_S
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            status = session.get(service.url("/health"), timeout=5).status_code
        except requests.RequestException:
            status = 0
        probes.append((status, time.monotonic() - started))
        time.sleep(PROBE_INTERVAL_S)
    stop.set()
    for thread in [*threads, prober]:
        thread.join(timeout=70)

    latencies = sorted(latency for _, latency in probes)
    good = sum(1 for status, latency in probes if status == 200 and latency <= probe_deadline_s)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"\nreadiness under {CLIENTS} clients: {good}/{len(probes)} probes 200 within {probe_deadline_s:.3f} s "
          f"({PROBE_DEADLINE_INFERENCES:g} idle inferences) "
          f"({100 * good / len(probes):.1f} %), statuses {dict(Counter(s for s, _ in probes))}, "
          f"p50 {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * p99:.1f} ms, "
          f"max {1000 * latencies[-1]:.1f} ms; /predict outcomes {dict(outcomes)}; "
          f"deep probes {dict(Counter(s for s, _ in deep))} (max {max(t for _, t in deep):.2f} s); "
          f"/live {dict(Counter(live))}; resnet50_queue_depth max {max(queue_depths, default=None)}")
    assert outcomes[200] > 0, outcomes
    assert outcomes[503] > 0, f"the load never exceeded MAX_INFLIGHT, so it proves nothing: {outcomes}"
    assert len(probes) >= 50
    assert good >= 0.99 * len(probes), f"{good}/{len(probes)}"
    assert set(live) == {200}
    # The in-flight gauge the HPA scales on (deploy/kubernetes/hpa.yaml) sees the queued work.
    assert queue_depths and max(queue_depths) >= 4, queue_depths
