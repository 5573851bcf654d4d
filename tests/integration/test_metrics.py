"""GET /metrics through the proxy: TorchServe's metrics API in Prometheus format plus the
handler's own, parsed with prometheus_client; the counters move with traffic."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import jpeg_bytes

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


def test_readiness_gauges_are_appended(service):
    """scripts/service/readiness.py's gauges follow TorchServe's text in the same scrape (for the HPA's
    Pods metric, deploy/kubernetes/hpa.yaml): queue depth, READY workers, readiness."""
    samples = scrape(service)
    assert samples["resnet50_workers_ready{ModelName=resnet50}"] >= 1
    assert samples["resnet50_ready{ModelName=resnet50}"] == 1
    assert samples["resnet50_queue_depth{ModelName=resnet50}"] >= 0
