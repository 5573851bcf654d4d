"""Worst days: a slow model, a killed worker, a killed frontend, SIGTERM under load, bad weights.

Each test group runs its own service (scripts/service/supervisor.py in the foreground, as a container
runtime would) so it can break it without disturbing the other tests.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import torch

from tests.support import jpeg_bytes, wait_until
from tests.integration.service import REPO_ROOT, start_foreground, variant_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = jpeg_bytes(200, 150, seed=11)
SLOW_HANDLER = (REPO_ROOT / "tests" / "fixtures" / "slow_handler.py").read_bytes()


def health(base: str, path: str = "/health") -> tuple[int, dict]:
    try:
        response = requests.get(base + path, timeout=5)
        return response.status_code, response.json()
    except requests.RequestException as error:
        return 0, {"error": str(error)}


@pytest.fixture(scope="module")
def slow_service(service, tmp_path_factory):
    """The real handler plus a test-only delay, REQUEST_TIMEOUT=3 s, 1 worker."""
    store = tmp_path_factory.mktemp("slow-store")
    variant_archive(service.archive, store, {"resnet50_handler.py": SLOW_HANDLER})
    running = start_foreground(tmp_path_factory.mktemp("slow-run"), store,
                               {"REQUEST_TIMEOUT": "3", "BATCH_SIZE": "1"})
    running.wait_healthy()
    yield running
    running.terminate()


def in_worker(service, request_id: str, timeout: float = 30) -> bool:
    """The request is inside the worker: the slow handler logged that its delay began."""
    return bool(service.wait_for_logs(lambda line: line.get("event") == "test_delay"
                                      and line.get("request_id") == request_id, timeout=timeout))


def queue_depth(base: str) -> int:
    """Requests waiting in TorchServe's queue (GET /metrics' resnet50_queue_depth, sampled every 0.5 s)."""
    text = requests.get(base + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("resnet50_queue_depth{"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def worker_pid(base: str) -> int:
    status, body = health(base)
    assert status == 200, body
    return body["worker_pid"]


def test_slow_inference_gets_504_json_and_the_worker_survives(slow_service):
    base = slow_service.service.base_url
    pid = worker_pid(base)
    started = time.monotonic()
    response = requests.post(base + "/predict", data=IMAGE, headers={"X-Test-Delay": "6"}, timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    body = response.json()
    assert body["error"]["code"] == "timeout" and body["error"]["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"]
    assert 2.5 < elapsed < 3 + 3  # REQUEST_TIMEOUT, plus slack for a slow machine
    # Readiness stays 200 meanwhile (the worker is READY, only busy: it is not taken out of service);
    # the deep check, through the queue, sees the worker free again once it finishes the slow job
    # (TorchServe's own timeout is far longer) and it serves on.
    assert health(base)[0] == 200
    assert wait_until(lambda: health(base, "/health?deep=1")[0] == 200, timeout=15)
    assert requests.post(base + "/predict", data=IMAGE, timeout=30).status_code == 200
    assert worker_pid(base) == pid


def test_v2_infer_timeout_is_504_in_the_protocols_error(slow_service):
    base = slow_service.service.base_url
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(IMAGE).decode()]}]}
    response = requests.post(base + "/v2/models/resnet50/infer", json=body, headers={"X-Test-Delay": "5"},
                             timeout=30)
    assert response.status_code == 504, response.text
    assert response.json()["error"] and response.json()["code"] == "timeout" and response.headers["Retry-After"]
    assert wait_until(lambda: health(base, "/health?deep=1")[0] == 200, timeout=15)


def test_killed_worker_answers_in_flight_requests_and_recovers(slow_service):
    base = slow_service.service.base_url
    pid = worker_pid(base)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(requests.post, base + "/predict", data=IMAGE,
                            headers={"X-Test-Delay": "2", "X-Request-ID": "kill-first"}, timeout=30)
        assert in_worker(slow_service.service, "kill-first")
        futures = [first] + [pool.submit(requests.post, base + "/predict", data=IMAGE,
                                         headers={"X-Test-Delay": "2"}, timeout=30) for _ in range(3)]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        unhealthy = wait_until(lambda: health(base)[0] == 503, timeout=5)
        responses = [f.result() for f in futures]
    assert unhealthy, "/health did not say 503 while the worker was gone"
    # The request inside the dying worker gets 503; queued ones wait for the next worker and
    # get 200, or 504 if REQUEST_TIMEOUT (3 s here) runs out first. All are JSON, none hangs.
    expected_codes = {503: "model_unavailable", 504: "timeout"}
    for response in responses:
        assert response.status_code in (200, 503, 504), response.text
        assert response.headers["Content-Type"].startswith("application/json")
        if response.status_code != 200:
            assert response.json()["error"]["code"] == expected_codes[response.status_code]
            assert response.headers["Retry-After"]
    assert any(r.status_code == 503 for r in responses), [r.status_code for r in responses]
    recovered = wait_until(lambda: health(base)[0] == 200, timeout=30, interval=0.5)
    assert recovered, "no ready worker 30 s after the kill"
    recovery_s = time.monotonic() - killed_at
    assert worker_pid(base) != pid
    # Ready means a READY worker, not an idle one: the new worker first works off the jobs queued
    # before the kill (their clients already had 504 here, REQUEST_TIMEOUT being 3 s against 2 s
    # each); the deep check, through the queue, says when that backlog is gone.
    drained = wait_until(lambda: health(base, "/health?deep=1")[0] == 200, timeout=30, interval=0.5)
    assert drained, "the queue left by the dead worker did not drain"
    drained_s = time.monotonic() - killed_at
    results = [requests.post(base + "/predict", data=IMAGE, timeout=30).status_code for _ in range(5)]
    assert results == [200] * 5
    print(f"worker recovery: ready {recovery_s:.1f} s, queue drained {drained_s:.1f} s after the kill")


def test_sigterm_drains_in_flight_requests(slow_service):
    """Runs last in this module: it stops the service."""
    base = slow_service.service.base_url
    with ThreadPoolExecutor(3) as pool:
        # One request inside the worker (seen in its log), two waiting in TorchServe's queue behind it
        # (seen in the queue-depth gauge): then the stop.
        futures = [pool.submit(requests.post, base + "/predict", data=IMAGE,
                               headers={"X-Test-Delay": "2", "X-Request-ID": "drain-first"}, timeout=30)]
        assert in_worker(slow_service.service, "drain-first")
        futures += [pool.submit(requests.post, base + "/predict", data=IMAGE, timeout=30) for _ in range(2)]
        assert wait_until(lambda: queue_depth(base) >= 2, timeout=1.5, interval=0.05), "the two were not queued"
        slow_service.process.send_signal(signal.SIGTERM)
        statuses = [f.result().status_code for f in futures]
    assert statuses == [200, 200, 200]
    assert slow_service.process.wait(timeout=60) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/health", timeout=5)


def test_killed_frontend_fails_health_fast_and_exits_nonzero(service, tmp_path_factory):
    running = start_foreground(tmp_path_factory.mktemp("frontend-run"), service.model_store)
    try:
        running.wait_healthy()
        base = running.service.base_url
        java = [p for p in psutil.Process(running.process.pid).children(recursive=True)
                if p.name() == "java"]
        assert len(java) == 1
        java[0].kill()
        killed_at = time.monotonic()
        assert wait_until(lambda: health(base)[0] != 200, timeout=3, interval=0.05)
        assert time.monotonic() - killed_at <= 3
        assert running.process.wait(timeout=60) == 1
    finally:
        running.terminate()
    lines = running.service.wait_for_logs(lambda line: line.get("event") == "child_died")
    assert lines and lines[0]["level"] == "CRITICAL"


def test_tampered_weights_never_become_ready(service, tmp_path_factory):
    state = torch.load(io.BytesIO(service.read_archive("weights.pt")), weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 0.5
    buffer = io.BytesIO()
    torch.save(state, buffer)
    store = tmp_path_factory.mktemp("tampered-store")
    variant_archive(service.archive, store, {"weights.pt": buffer.getvalue()})
    running = start_foreground(tmp_path_factory.mktemp("tampered-run"), store, {"REQUEST_TIMEOUT": "5"})
    try:
        critical = running.service.wait_for_logs(
            lambda line: line.get("level") == "CRITICAL" and line.get("event") == "model_load_failed", timeout=120)
        assert critical, "no CRITICAL log for the refused weights"
        assert "sha256 differs" in critical[0].get("exception", "")
        status, body = health(running.service.base_url)
        assert status == 503 and body["status"] == "unhealthy"
        response = requests.post(running.service.url("/predict"), data=IMAGE, timeout=60)
        assert response.status_code in (503, 504) and response.json()["error"]["code"] in ("model_unavailable", "timeout")
    finally:
        assert running.terminate() == 0
