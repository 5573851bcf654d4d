"""GET /metrics through the proxy: TorchServe's metrics API in Prometheus format plus the
handler's own, parsed with prometheus_client; the counters move with traffic. With METRICS_PORT
set, the same text on that port alone."""

from __future__ import annotations

import http.client
import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.service import MAX_FILE_SIZE, start_service
from tests.support import free_ports, jpeg_bytes

pytestmark = pytest.mark.integration


def scrape(service) -> dict[str, float]:
    response = requests.get(service.url("/metrics"), timeout=10)
    assert response.status_code == 200, response.text[:200]
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k not in ("Hostname", "le"))
            if "le" in sample.labels:
                continue
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def value(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(prefix))


def test_metrics_move_with_traffic(service):
    before = scrape(service)
    for seed in range(3):
        assert requests.post(service.url("/predict"), data=jpeg_bytes(90, 60, seed=40 + seed), timeout=30).ok
    assert requests.post(service.url("/predict"), data=b"not an image", timeout=30).status_code == 415
    after = scrape(service)
    ok = "resnet50_requests_total{ModelName=resnet50,status=200}"
    assert after[ok] - before.get(ok, 0) == 3
    errors = "resnet50_errors_total{ModelName=resnet50,code=unsupported_media_type}"
    assert after[errors] - before.get(errors, 0) == 1
    for name in ("preprocess", "inference", "postprocess"):
        key = f"resnet50_{name}_seconds_count{{ModelName=resnet50}}"
        assert after[key] - before.get(key, 0) >= 3
    assert value(after, "resnet50_inference_seconds_sum") > value(before, "resnet50_inference_seconds_sum")
    assert value(after, "resnet50_image_bytes_total") > value(before, "resnet50_image_bytes_total")
    assert value(after, "ts_inference_requests_total") >= value(before, "ts_inference_requests_total") + 4


def test_metrics_route_is_read_only(service):
    response = requests.post(service.url("/metrics"), timeout=10)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    too_large = requests.post(service.url("/metrics"), data=b"x" * (MAX_FILE_SIZE + (1 << 20)), timeout=30)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "payload_too_large"


def test_readiness_gauges_are_appended(service):
    """scripts/service/readiness.py's gauges follow TorchServe's text in the same scrape (for the HPA's
    Pods metric, deploy/kubernetes/hpa.yaml): queue depth, READY workers, readiness."""
    samples = scrape(service)
    assert samples["resnet50_workers_ready{ModelName=resnet50}"] >= 1
    assert samples["resnet50_ready{ModelName=resnet50}"] == 1
    assert samples["resnet50_queue_depth{ModelName=resnet50}"] >= 0


# ---- METRICS_PORT: /metrics on a listener of its own, which a Service or Ingress never routes.


@pytest.fixture(scope="module")
def metrics_port_service(tmp_path_factory, service):
    """A second instance with METRICS_PORT set (the default METRICS_ALLOW: loopback)."""
    metrics_port = free_ports(1)[0]
    running = start_service(tmp_path_factory.mktemp("metrics-port-run"), service.model_store,
                            {"METRICS_PORT": str(metrics_port)}, watch_health=False)
    running.metrics_url = f"http://127.0.0.1:{metrics_port}"
    yield running
    result = running.stop()
    assert result.returncode == 0, result.stdout + result.stderr


def get_from(url: str, source: str) -> tuple[int, dict]:
    """GET from another loopback address than 127.0.0.1 (all of 127/8 reaches the host on Linux)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def assert_json_404(response: requests.Response) -> None:
    assert response.status_code == 404, (response.request.method, response.url, response.status_code)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found" and response.headers["X-Request-ID"]


def test_metrics_port_serves_the_same_text(metrics_port_service):
    service = metrics_port_service
    assert requests.post(service.url("/predict"), data=jpeg_bytes(64, 48, seed=7), timeout=30).ok
    response = requests.get(service.metrics_url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text[:200]
    names = {sample.name: sample.value for family in text_string_to_metric_families(response.text)
             for sample in family.samples}
    assert names["resnet50_requests_total"] >= 1  # the handler's
    assert "ts_inference_requests_total" in names  # TorchServe's
    assert names["resnet50_ready"] == 1 and names["resnet50_workers_ready"] >= 1  # readiness.py's, appended
    assert "resnet50_queue_depth" in names
    assert requests.head(service.metrics_url + "/metrics", timeout=10).status_code == 200
    refused = requests.post(service.metrics_url + "/metrics", timeout=10)
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
    too_large = requests.post(service.metrics_url + "/metrics", data=b"x" * 20_000, timeout=10)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "payload_too_large"


def test_metrics_port_serves_nothing_else(metrics_port_service):
    base = metrics_port_service.metrics_url
    for path in ("/", "/health", "/live", "/info", "/openapi.json", "/v2", "/metrics/", "/_metrics/readiness",
                 "/static/app.js"):
        assert_json_404(requests.get(base + path, timeout=10))
    assert_json_404(requests.post(base + "/predict", data=jpeg_bytes(64, 48), timeout=30))


def test_metrics_port_keeps_the_allow_list(metrics_port_service):
    status, body = get_from(metrics_port_service.metrics_url, "127.0.0.2")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_public_port_has_no_metrics_for_anyone(metrics_port_service):
    assert_json_404(requests.get(metrics_port_service.url("/metrics"), timeout=10))
    assert requests.head(metrics_port_service.url("/metrics"), timeout=10).status_code == 404
    assert_json_404(requests.post(metrics_port_service.url("/metrics"), timeout=10))
    assert requests.get(metrics_port_service.url("/health"), timeout=10).status_code == 200
