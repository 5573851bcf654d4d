"""scripts/service/readiness.py against a scripted stand-in of TorchServe's management API: readiness from the
workers' states (never the job queue), liveness, the v2 health and metadata routes, the gauges."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.service.readiness import POLL_INTERVAL_S, UNREADY_POLL_INTERVAL_S, ReadinessServer
from tests.support import wait_until

KEY = "mgmt-key"


def describe(version="1.0", status="READY", pid=4242, pending=3, url="resnet50.mar"):
    return {"modelName": "resnet50", "modelVersion": version, "modelUrl": url,
            "workers": [{"id": "9000", "status": status, "pid": pid}],
            "jobQueueStatus": {"remainingCapacity": 61, "pendingRequests": pending}}


class FakeManagement:
    """GET /models/resnet50 and /models/resnet50/all, with a Bearer key, as TorchServe answers them."""

    def __init__(self) -> None:
        self.default: dict | None = describe()
        self.others: list[dict] = []
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                fake.calls += 1
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._send(401, {"code": 401})
                if fake.default is None:
                    return self._send(404, {"code": 404, "message": "Model not found: resnet50"})
                if self.path == "/models/resnet50":
                    return self._send(200, [fake.default])
                if self.path == "/models/resnet50/all":
                    return self._send(200, [fake.default, *fake.others])
                return self._send(404, {})

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def store(tmp_path):
    with zipfile.ZipFile(tmp_path / "resnet50.mar", "w") as archive:
        archive.writestr("model_meta.json", json.dumps({"categories": ["a", "b", "c", "d"],
                                                        "weights": {"pretrained": True}}))
    return tmp_path


@pytest.fixture()
def running(store):
    management = FakeManagement()
    server = ReadinessServer("resnet50", store).start()
    base = f"http://127.0.0.1:{server.port}"
    yield management, server, base
    server.stop()
    management.stop()


def wait_status(url: str, status: int, timeout: float = 4.0) -> requests.Response:
    responses: list[requests.Response] = []

    def answered() -> bool:
        responses.append(requests.get(url, headers={"X-Request-ID": "probe-1"}, timeout=2))
        return responses[-1].status_code == status

    wait_until(answered, timeout, interval=0.05)
    return responses[-1]


def test_not_ready_until_connected_then_ready_from_worker_states(running):
    management, server, base = running
    early = requests.get(base + "/health", timeout=2)
    assert early.status_code == 503 and early.json()["reason"] == "starting"
    server.connect(management.port, KEY)
    response = wait_status(base + "/health", 200)
    assert response.status_code == 200
    body = response.json()
    assert body == {"status": "healthy", "model": {"name": "resnet50", "version": "1.0"}, "pretrained": True,
                    "worker_pid": 4242, "workers_ready": 1, "request_id": "probe-1"}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("change, reason", [
    (lambda m: setattr(m, "default", describe(status="UNLOADING")), "no_ready_worker"),
    (lambda m: setattr(m, "default", {**describe(), "workers": []}), "no_ready_worker"),
    (lambda m: setattr(m, "default", None), "model_not_registered"),
    (lambda m: m.stop(), "frontend_unreachable"),
])
def test_unready_states_answer_503_with_a_reason(running, change, reason):
    management, server, base = running
    server.connect(management.port, KEY)
    assert wait_status(base + "/health", 200).status_code == 200
    change(management)
    response = wait_status(base + "/health", 503)
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "unhealthy" and response.json()["reason"] == reason
    assert response.headers["Retry-After"]
    live = requests.get(base + "/live", timeout=2)
    assert live.status_code == (503 if reason == "frontend_unreachable" else 200)


def test_polls_once_per_interval_whatever_the_probe_rate(running):
    management, server, base = running
    server.connect(management.port, KEY)
    wait_status(base + "/health", 200)
    before, started = management.calls, time.monotonic()
    while time.monotonic() - started < 2.5:  # long enough for several polls, whatever the machine
        assert requests.get(base + "/health", timeout=2).status_code == 200
    elapsed = time.monotonic() - started
    # Two management calls (default + all versions) per poll, one poll per POLL_INTERVAL_S;
    # hundreds of probes meanwhile cost the management API nothing more.
    polls = (management.calls - before) / 2
    assert 1 <= polls <= elapsed / POLL_INTERVAL_S + 2


def test_a_recovering_worker_is_noticed_within_the_fast_interval(running):
    """Not ready, the poller looks every UNREADY_POLL_INTERVAL_S, so a worker that comes back
    is in service well before the next regular poll would have seen it."""
    management, server, base = running
    management.default = describe(status="UNLOADING")
    management.others = []
    server.connect(management.port, KEY)
    wait_status(base + "/health", 503)
    before = management.calls
    time.sleep(1.0)
    polls = (management.calls - before) / 2
    # More polls in that second than POLL_INTERVAL_S allows (ideally 1 / UNREADY_POLL_INTERVAL_S).
    assert 1.0 / POLL_INTERVAL_S + 1 < polls <= 1.0 / UNREADY_POLL_INTERVAL_S + 2, polls
    management.default = describe(status="READY")
    recovered = time.monotonic()
    wait_status(base + "/health", 200)
    assert time.monotonic() - recovered < POLL_INTERVAL_S


def test_v2_health_and_metadata(running):
    management, server, base = running
    management.others = [describe(version="2.0", status="UNLOADING", url="missing.mar")]
    server.connect(management.port, KEY)
    assert wait_status(base + "/v2/health/ready", 200).json() == {"ready": True}
    assert requests.get(base + "/v2/health/live", timeout=2).json() == {"live": True}
    meta = requests.get(base + "/v2/models/resnet50", timeout=2).json()
    assert meta["name"] == "resnet50" and meta["versions"] == ["1.0", "2.0"]
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]}]  # the archive's 4
    assert requests.get(base + "/v2/models/resnet50/versions/1.0/ready", timeout=2).status_code == 200
    not_ready = requests.get(base + "/v2/models/resnet50/versions/2.0/ready", timeout=2)
    assert not_ready.status_code == 503 and not_ready.json()["ready"] is False
    unknown = requests.get(base + "/v2/models/other", timeout=2, headers={"X-Request-ID": "r9"})
    assert unknown.status_code == 404 and isinstance(unknown.json()["error"], str)
    assert unknown.json()["code"] == "not_found" and unknown.json()["request_id"] == "r9"
    assert requests.get(base + "/v2/models/resnet50/versions/9.9", timeout=2).status_code == 404
    server_meta = requests.get(base + "/v2", timeout=2).json()
    assert {"binary_tensor_data", "classification"} <= set(server_meta["extensions"])
    head = requests.head(base + "/health", timeout=2)
    assert head.status_code == 200 and head.content == b""


def test_gauges_parse_as_prometheus_text(running):
    management, server, base = running
    server.connect(management.port, KEY)
    wait_status(base + "/health", 200)
    text = requests.get(base + "/metrics", timeout=2).text
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples == {"resnet50_queue_depth": 3, "resnet50_workers_ready": 1, "resnet50_ready": 1}
    management.default = describe(pending=17)
    time.sleep(1.5)
    text = requests.get(base + "/metrics", timeout=2).text
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples["resnet50_queue_depth"] == 17
