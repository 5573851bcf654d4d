"""The public API through nginx on :PORT, against the real TorchServe: routes, forms, errors."""

from __future__ import annotations

import base64
import json

import psutil
import pytest
import requests

from handler.settings_table import BY_NAME
from tests.integration.service import DEFAULT_TOP_K, MAX_FILE_SIZE
from tests.support import bomb_png, jpeg_bytes, png_bytes

pytestmark = pytest.mark.integration


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    return body


def assert_prediction(service, response: requests.Response, top_k: int) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert len(body["predictions"]) == top_k
    # Honest about the weights: what the archive says (the suite's own is random, a user's may not be).
    assert body["model"]["name"] == "resnet50" and body["model"]["pretrained"] is service.pretrained
    return body


# ------------------------------------------------------------------------------ health
def test_health_is_503_json_before_ready_then_200(service):
    early = [body for status, body in service.health_before_ready if status == 503]
    assert early, f"no 503 seen while starting: {service.health_before_ready[:5]}"
    assert all(body["status"] == "unhealthy" and body["reason"] for body in early)
    response = requests.get(service.url("/health"), timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["pretrained"] is service.pretrained
    assert body["request_id"] == response.headers["X-Request-ID"]


# ----------------------------------------------------------------------- request forms
IMAGE = jpeg_bytes(320, 240, seed=3)


def test_multipart_with_top_k_field(service):
    body = assert_prediction(service, requests.post(service.url("/predict"), files={"file": ("a.jpg", IMAGE)},
                                           data={"top_k": "3"}, timeout=30), 3)
    assert body["image"] == {"width": 320, "height": 240, "format": "JPEG"}


def test_multipart_with_query_top_k(service):
    assert_prediction(service, requests.post(service.url("/predict?top_k=2"), files={"file": IMAGE}, timeout=30), 2)


def test_raw_body_with_query_top_k(service):
    assert_prediction(service, requests.post(service.url("/predict?top_k=7"), data=IMAGE,
                                    headers={"Content-Type": "image/jpeg"}, timeout=30), 7)


def test_raw_body_sent_as_curl_form_urlencoded_default(service):
    response = requests.post(service.url("/predict"), data=IMAGE,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert_prediction(service, response, DEFAULT_TOP_K)


def test_json_with_top_k_and_query_fallback(service):
    encoded = base64.b64encode(png_bytes(80, 60)).decode()
    assert_prediction(service, requests.post(service.url("/predict"), json={"image": encoded, "top_k": 4}, timeout=30), 4)
    assert_prediction(service, requests.post(service.url("/predict?top_k=6"), json={"image": encoded}, timeout=30), 6)


def test_same_image_same_answer_in_every_form(service):
    encoded = base64.b64encode(IMAGE).decode()
    answers = [
        requests.post(service.url("/predict"), files={"file": IMAGE}, timeout=30).json(),
        requests.post(service.url("/predict"), data=IMAGE, timeout=30).json(),
        requests.post(service.url("/predict"), json={"image": encoded}, timeout=30).json(),
    ]
    ids = [[p["class_id"] for p in a["predictions"]] for a in answers]
    assert ids[0] == ids[1] == ids[2]


# ------------------------------------------------------------------- several images per request
def test_several_images_in_multipart_and_json(service):
    single = requests.post(service.url("/predict?top_k=3"), data=IMAGE, timeout=30).json()
    files = {"file": ("a.jpg", IMAGE), "file_1": ("notes.txt", b"just text"), "file_2": ("b.png", png_bytes(50, 40))}
    multipart = requests.post(service.url("/predict"), files=files, data={"top_k": "3"}, timeout=60)
    encoded = [base64.b64encode(IMAGE).decode(), "%%%", base64.b64encode(png_bytes(50, 40)).decode()]
    from_json = requests.post(service.url("/predict?top_k=3"), json={"images": encoded}, timeout=60)
    for response, bad_code in ((multipart, "unsupported_media_type"), (from_json, "invalid_image")):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["request_id"] == response.headers["X-Request-ID"]
        assert [r["index"] for r in body["results"]] == [0, 1, 2]
        assert body["summary"] == {"images": 3, "succeeded": 2, "failed": 1}
        first, bad, third = body["results"]
        assert [p["class_id"] for p in first["predictions"]] == [p["class_id"] for p in single["predictions"]]
        assert first["image"]["format"] == "JPEG" and third["image"] == {"width": 50, "height": 40, "format": "PNG"}
        assert len(third["predictions"]) == 3
        assert bad["error"]["code"] == bad_code and "predictions" not in bad


def test_too_many_images_is_400(service):
    encoded = base64.b64encode(png_bytes(8, 8)).decode()
    too_many = BY_NAME["MAX_IMAGES_PER_REQUEST"].parse() + 1
    assert_error(requests.post(service.url("/predict"), json={"images": [encoded] * too_many}, timeout=30),
                 400, "too_many_images")
    assert_error(requests.post(service.url("/predict"), json={"images": []}, timeout=30), 400, "missing_image")


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, status, code", [
    ({"files": {"wrong": IMAGE}}, 400, "missing_image"),
    ({"data": b""}, 400, "missing_image"),
    ({"json": {"top_k": 3}}, 400, "missing_image"),
    ({"data": IMAGE[:500]}, 400, "invalid_image"),
    ({"json": {"image": "%%% not base64 %%%"}}, 400, "invalid_image"),
    ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
    ({"json": [1, 2, 3]}, 400, "invalid_json"),
    ({"files": {"file": IMAGE}, "data": {"top_k": "0"}}, 400, "invalid_top_k"),
    ({"json": {"image": base64.b64encode(IMAGE).decode(), "top_k": 1001}}, 400, "invalid_top_k"),
    ({"data": b"just some text", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    ({"files": {"file": ("doc.pdf", b"%PDF-1.4 fake")}}, 415, "unsupported_media_type"),
    ({"data": bomb_png()}, 413, "payload_too_large"),
])
def test_client_errors(service, kwargs, status, code):
    assert_error(requests.post(service.url("/predict"), timeout=30, **kwargs), status, code)


@pytest.mark.parametrize("query", ["top_k=abc", "top_k=2.5", "top_k=-1", "top_k=0"])
def test_invalid_query_top_k(service, query):
    assert_error(requests.post(service.url(f"/predict?{query}"), data=IMAGE, timeout=30), 400, "invalid_top_k")


def test_body_over_max_file_size_is_413_from_the_proxy(service):
    response = requests.post(service.url("/predict"), data=b"\xff\xd8\xff" + b"\x00" * (MAX_FILE_SIZE + (1 << 20)),
                             timeout=30)
    body = assert_error(response, 413, "payload_too_large")
    assert str(MAX_FILE_SIZE) in body["error"]["message"]


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/predict", "POST"), ("PUT", "/predict", "POST"), ("POST", "/health", "GET, HEAD"),
    ("DELETE", "/info", "GET, HEAD"),
])
def test_wrong_method_is_405_json(service, method, path, allowed):
    response = requests.request(method, service.url(path), timeout=10)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("path", ["/nope", "/predictions/resnet50", "/models", "/models/resnet50",
                                  "/ping", "/api-description", "/predict/", "/info/x"])
def test_unknown_and_torchserve_paths_are_404_json(service, path):
    for method in ("GET", "POST"):
        assert_error(requests.request(method, service.url(path), timeout=10), 404, "not_found")


# -------------------------------------------------------------------------- request id
def test_client_request_id_is_echoed_everywhere(service):
    rid = "client-id-42"
    ok = requests.post(service.url("/predict"), data=IMAGE, headers={"X-Request-ID": rid}, timeout=30)
    assert ok.headers["X-Request-ID"] == rid and ok.json()["request_id"] == rid
    bad = requests.post(service.url("/predict"), data=b"text", headers={"X-Request-ID": rid}, timeout=30)
    assert bad.headers["X-Request-ID"] == rid and bad.json()["error"]["request_id"] == rid
    missing = requests.get(service.url("/nope"), headers={"X-Request-ID": rid}, timeout=10)
    assert missing.json()["error"]["request_id"] == rid
    health = requests.get(service.url("/health"), headers={"X-Request-ID": rid}, timeout=10)
    assert health.headers["X-Request-ID"] == rid
    logged = service.wait_for_logs(lambda line: line.get("request_id") == rid, count=6)
    assert {line["logger"] for line in logged} >= {"nginx.access", "resnet50"}


@pytest.mark.parametrize("rid", ["x" * 10_000, "has space", "semi;colon", '"quoted"'])
def test_insane_request_id_is_replaced(service, rid):
    response = requests.get(service.url("/health"), headers={"X-Request-ID": rid}, timeout=10)
    assert response.headers["X-Request-ID"] != rid
    assert len(response.headers["X-Request-ID"]) == 32


def test_generated_request_ids_are_unique(service):
    ids = {requests.get(service.url("/health"), timeout=10).headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


# -------------------------------------------------------------------------------- info
def test_info_describes_model_and_handler(service):
    response = requests.get(service.url("/info"), timeout=10)
    assert response.status_code == 200
    body = response.json()
    (model,) = body["default"]
    assert [v["modelVersion"] for v in body["versions"]] == ["1.0"]  # every loaded version
    assert model["modelName"] == "resnet50" and model["modelVersion"] == "1.0"
    assert model["workers"] and model["workers"][0]["status"] == "READY"
    assert model["batchSize"] == int(service.env.get("BATCH_SIZE", 4))
    meta = model["customizedMetadata"]
    assert meta["architecture"] == "resnet50" and meta["num_classes"] == 1000
    assert meta["pretrained"] is service.pretrained and meta["weights"]["pretrained"] is service.pretrained
    archive_meta = json.loads(service.read_archive("model_meta.json"))
    assert meta["weights"]["sha256"] == archive_meta["weights"]["sha256"]
    assert meta["preprocessing"] == archive_meta["preprocessing"]
    assert meta["runtime"]["device"] == "cpu" and meta["runtime"]["precision"] == "fp32"
    assert meta["limits"]["max_file_size"] == MAX_FILE_SIZE
    assert meta["selftest"]["passed"] is True


# ---------------------------------------------------------------------- listeners, logs
def test_torchserve_listens_on_loopback_only(service):
    ports = {int(service.env[k]) for k in ("TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT", "TS_METRICS_PORT",
                                           "TS_GRPC_INFERENCE_PORT", "TS_GRPC_MANAGEMENT_PORT")}
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    assert {c.laddr.port for c in listening} == ports
    assert all(c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1") for c in listening), listening


def test_logs_are_json_lines_with_levels(service):
    requests.post(service.url("/predict"), data=b"text", headers={"X-Request-ID": "log-check"}, timeout=30)
    lines = service.wait_for_logs(lambda line: line.get("request_id") == "log-check", count=2)
    access = [line for line in lines if line["logger"] == "nginx.access"]
    handler = [line for line in lines if line["logger"] == "resnet50"]
    assert access and access[0]["status"] == 415 and access[0]["level"] == "ERROR"
    assert handler and handler[0]["code"] == "unsupported_media_type" and handler[0]["level"] == "ERROR"
    random_warning = [line for line in service.log_lines() if line.get("event") == "random_weights"]
    if service.pretrained:  # tests/integration/test_pretrained_weights.py starts such an archive
        assert not random_warning
    else:
        assert random_warning and random_warning[0]["level"] == "WARNING"
