"""Only the documented routes are reachable; TorchServe's control surfaces are not; optional
rate limiting and API keys work at the proxy."""

from __future__ import annotations

import pytest
import requests

from tests.support import jpeg_bytes
from tests.integration.service import raw_http, start_service

pytestmark = pytest.mark.integration

IMAGE = jpeg_bytes(64, 48, seed=5)

TORCHSERVE_PATHS = [
    "/models", "/models/resnet50", "/models/resnet50/1.0", "/models/resnet50/1.0/set-default",
    "/models/resnet50/all", "/predictions/resnet50", "/predictions/resnet50/1.0", "/explanations/resnet50",
    "/ping", "/api-description", "/v1/models/resnet50:explain", "/v1/models/resnet50/1.0",
    "/invocations",
    "/workflows", "/workflows/w", "/wfpredict/w", "/models?url=http://evil.example/x.mar",
    "/../models", "/predict/../models", "/%2e%2e/models", "/predict%2F..%2Fmodels", "/info/../models",
    "/health/../models", "//models", "/PREDICT", "/predict;x=1", "/info.json", "/.env", "/config/config.properties",
]


@pytest.mark.parametrize("path", TORCHSERVE_PATHS)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_torchserve_paths_and_methods_are_not_reachable(service, path, method):
    response = requests.request(method, service.url(path), data=b"x" if method in ("POST", "PUT") else None,
                                timeout=10, allow_redirects=False)
    assert response.status_code in (404, 405), (response.status_code, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    # Under /v1 and /v2 errors are the protocols' {"error": "<message>", "code"}; elsewhere this service's.
    code = body["code"] if path.startswith(("/v1/", "/v2/")) else body["error"]["code"]
    assert code in ("not_found", "method_not_allowed"), body


# The Open Inference Protocol v2 routes exist (tests/integration/test_open_inference_protocol.py); the rest
# of Triton's and KServe's v2 surface (repository, shared memory, statistics, tracing, logging) does not.
V2_GET_ROUTES = ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/resnet50", "/v2/models/resnet50/ready",
                 "/v2/models/resnet50/versions/1.0", "/v2/models/resnet50/versions/1.0/ready"]
V2_UNKNOWN = ["/v2/", "/v2/models", "/v2/repository/index", "/v2/repository/models/resnet50/load",
              "/v2/models/resnet50/stats", "/v2/models/resnet50/versions", "/v2/systemsharedmemory/status",
              "/v2/cudasharedmemory/status", "/v2/trace/setting", "/v2/logging", "/v2/models/resnet50/generate",
              "/v2/models/resnet50/versions/1.0/infer/x", "/v2/models/resnet50/infer/"]


def assert_v2_error(response, status, code):
    assert response.status_code == status, (response.status_code, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["code"] == code, body


@pytest.mark.parametrize("path", V2_GET_ROUTES)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_v2_read_routes_refuse_other_methods(service, path, method):
    response = requests.request(method, service.url(path), data=b"x" if method in ("POST", "PUT") else None,
                                timeout=10, allow_redirects=False)
    assert_v2_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_v2_infer_refuses_other_methods(service, method):
    response = requests.request(method, service.url("/v2/models/resnet50/infer"), timeout=10)
    assert_v2_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


# KServe's v1 routes exist (tests/integration/test_kserve_v1.py), in KServe's error format; they refuse
# other methods the same way.
V1_ROUTES = {"/v1/models": "GET, HEAD", "/v1/models/resnet50": "GET, HEAD", "/v1/models/resnet50:predict": "POST"}


@pytest.mark.parametrize("path, method", [(path, method) for path, allowed in sorted(V1_ROUTES.items())
                                          for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
                                          if method not in allowed])
def test_v1_routes_refuse_other_methods(service, path, method):
    response = requests.request(method, service.url(path), data=b"x" if method in ("POST", "PUT") else None,
                                timeout=10, allow_redirects=False)
    assert_v2_error(response, 405, "method_not_allowed")  # KServe's {"error": "..."} shape, as v2's
    assert response.headers["Allow"] == V1_ROUTES[path]


@pytest.mark.parametrize("path", V2_UNKNOWN)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_rest_of_the_v2_surface_is_404(service, path, method):
    assert_v2_error(requests.request(method, service.url(path), timeout=10, allow_redirects=False), 404, "not_found")


def test_model_registration_is_impossible_even_on_loopback(service):
    management = f"http://127.0.0.1:{service.env['TS_MANAGEMENT_PORT']}"
    register = requests.post(f"{management}/models", params={"url": "https://example.invalid/evil.mar"}, timeout=10)
    assert register.status_code >= 400
    unregister = requests.delete(f"{management}/models/resnet50", timeout=10)
    assert unregister.status_code >= 400
    assert requests.get(service.url("/health"), timeout=10).status_code == 200


def test_conflicting_content_length_and_transfer_encoding_is_rejected(service):
    request = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n0\r\n\r\nGET /models HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = raw_http(service.base_url, request)
    assert status == 400
    assert b"bad_request" in body


def test_duplicate_content_length_is_rejected(service):
    request = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n"
               b"Connection: close\r\n\r\nabc")
    status, _, body = raw_http(service.base_url, request)
    assert status == 400 and b"bad_request" in body


@pytest.fixture(scope="module")
def guarded_service(tmp_path_factory, service):
    """A second instance with the optional guards on: rate limit and API keys."""
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text("# one key per line\nfile-key-0123456789abcdef\n")
    running = start_service(tmp_path_factory.mktemp("guarded-run"), service.model_store, {
        "RATE_LIMIT_RPS": "2", "RATE_LIMIT_BURST": "3", "API_KEYS": "env-key-0123456789abcdef",
        "API_KEYS_FILE": str(keys_file), "METRICS_ALLOW": "192.0.2.1",
    }, watch_health=False)
    yield running
    running.stop()


def test_api_key_required_when_configured(guarded_service):
    url = guarded_service.url("/predict")
    missing = requests.post(url, data=IMAGE, timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"]
    wrong = requests.post(url, data=IMAGE, headers={"X-API-Key": "wrong-key-0123456789abc"}, timeout=30)
    assert wrong.status_code == 401
    assert requests.get(guarded_service.url("/info"), timeout=10).status_code == 401
    for key in ("env-key-0123456789abcdef", "file-key-0123456789abcdef"):
        assert requests.post(url, data=IMAGE, headers={"X-API-Key": key}, timeout=30).status_code == 200
    # Load balancers probe without a key.
    assert requests.get(guarded_service.url("/health"), timeout=10).status_code == 200


def test_v2_needs_the_api_key_except_for_probes(guarded_service):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/resnet50/ready", "/live", "/health"):
        assert requests.get(guarded_service.url(path), timeout=10).status_code == 200, path
    missing = requests.get(guarded_service.url("/v2/models/resnet50"), timeout=10)
    assert_v2_error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"]
    assert_v2_error(requests.post(guarded_service.url("/v2/models/resnet50/infer"), json={}, timeout=30),
                    401, "unauthorized")
    headers = {"X-API-Key": "env-key-0123456789abcdef"}
    assert requests.get(guarded_service.url("/v2/models/resnet50"), headers=headers, timeout=10).status_code == 200


def test_metrics_hidden_from_addresses_not_allowed(guarded_service):
    response = requests.get(guarded_service.url("/metrics"), timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_rate_limit_answers_429_json(guarded_service):
    headers = {"X-API-Key": "env-key-0123456789abcdef"}
    statuses = [requests.post(guarded_service.url("/predict"), data=b"not an image", headers=headers,
                              timeout=30) for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert limited[0].headers["Retry-After"] == "1"
    assert all(r.status_code in (415, 429) for r in statuses)
