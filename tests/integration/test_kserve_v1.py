"""KServe v1 through nginx on the service's one port, and the clients that must work there unchanged.

One instance of its own, with what /predict's guards need to show: API keys on (API_KEYS), MAX_INFLIGHT
equal to BATCH_SIZE and a long MAX_BATCH_DELAY_MS (so concurrent requests meet in one TorchServe batch).

- GET /v1/models, GET /v1/models/resnet50 (readiness, the same source as /health), other names 404;
- POST /v1/models/resnet50:predict: {"instances": [...]} -> {"predictions": [...]}, equal to /predict's for the
  same images; concurrent requests batched together, each with its own answer;
- errors as KServe's {"error": ...} plus code and request id, from the handler and from nginx;
  API keys and MAX_INFLIGHT shedding as on /predict;
- KServe's own client (kserve.InferenceRESTClient, v1 and v2) from its venv (scripts/client/kserve_venv.sh),
  and tritonclient (HTTP), on the same port.
"""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from handler.settings_table import BY_NAME
from scripts.client.kserve_venv import KServeClientUnavailable, kserve_client_python, run_in_kserve_venv
from tests.integration.service import SUITE_ARCHIVE_ENV, SUITE_STORE, start_service
from tests.support import jpeg_bytes, png_bytes

MODEL = "resnet50"
KEY = "kserve-v1-test-key-0123456789"
AUTH = {"X-API-Key": KEY}
BATCH_SIZE = BY_NAME["BATCH_SIZE"].parse()
DEFAULT_TOP_K = BY_NAME["DEFAULT_TOP_K"].parse()
MAX_FILE_SIZE = BY_NAME["MAX_FILE_SIZE"].parse()


@pytest.fixture(scope="module")
def v1_service(tmp_path_factory):
    SUITE_STORE.mkdir(parents=True, exist_ok=True)
    running = start_service(tmp_path_factory.mktemp("kserve-v1"), SUITE_STORE, {
        **SUITE_ARCHIVE_ENV, "API_KEYS": KEY, "MAX_INFLIGHT": str(BATCH_SIZE), "MAX_BATCH_DELAY_MS": "400"})
    yield running
    result = running.stop()
    assert result.returncode == 0, result.stdout + result.stderr


def predict_url(service, model: str = MODEL) -> str:
    return service.url(f"/v1/models/{model}:predict")


def v1_predict(service, instances, headers=None, **kwargs) -> requests.Response:
    return requests.post(predict_url(service), json={"instances": instances},
                         headers={**AUTH, **(headers or {})}, timeout=60, **kwargs)


def b64(image: bytes) -> str:
    return base64.b64encode(image).decode()


def classic_predict(service, image: bytes, top_k: int) -> list[dict]:
    response = requests.post(service.url(f"/predict?top_k={top_k}"), data=image, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def assert_same_predictions(left: list[dict], right: list[dict]) -> None:
    assert [p["class_id"] for p in left] == [p["class_id"] for p in right]
    assert [p["probability"] for p in left] == pytest.approx([p["probability"] for p in right], abs=1e-5)


def assert_kserve_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "code", "request_id"} and isinstance(body["error"], str), body
    assert body["code"] == code and body["request_id"] == response.headers["X-Request-ID"]
    return body


# ------------------------------------------------------------------------------------------ the routes


def test_model_list_and_readiness(v1_service):
    models = requests.get(v1_service.url("/v1/models"), headers=AUTH, timeout=10)
    assert models.status_code == 200 and models.json() == {"models": [MODEL]}
    ready = requests.get(v1_service.url(f"/v1/models/{MODEL}"), timeout=10)  # a probe: no key needed
    assert ready.status_code == 200 and ready.json() == {"name": MODEL, "ready": True}
    assert ready.headers["Cache-Control"] == "no-store"
    assert requests.get(v1_service.url("/health"), timeout=10).status_code == 200  # one source
    assert requests.head(v1_service.url(f"/v1/models/{MODEL}"), timeout=10).status_code == 200
    other = assert_kserve_error(requests.get(v1_service.url("/v1/models/other"), timeout=10), 404, "not_found")
    assert other["error"] == "Model with name other does not exist."


def test_predict_equals_predict_for_the_same_images(v1_service):
    images = [jpeg_bytes(160, 120, seed=31), png_bytes(90, 70, seed=32)]
    response = v1_predict(v1_service, [{"data": b64(images[0]), "top_k": 3}, {"b64": b64(images[1])}],
                          headers={"X-Request-ID": "v1-equal"})
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "v1-equal"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["predictions"] and [r["index"] for r in body["predictions"]] == [0, 1]
    for image, result in zip(images, body["predictions"]):
        assert result["status"] == 200 and len(result["predictions"]) == 3
        assert_same_predictions(result["predictions"], classic_predict(v1_service, image, 3))
    assert body["predictions"][1]["image"] == {"width": 90, "height": 70, "format": "PNG"}


def test_concurrent_requests_share_a_batch_and_each_gets_its_own_answer(v1_service):
    images = [jpeg_bytes(120 + 8 * i, 96, seed=40 + i) for i in range(BATCH_SIZE)]
    expected = [classic_predict(v1_service, image, DEFAULT_TOP_K) for image in images]
    barrier = threading.Barrier(len(images))

    def send(index: int) -> requests.Response:
        barrier.wait()
        return v1_predict(v1_service, [{"data": b64(images[index])}], headers={"X-Request-ID": f"v1-batch-{index}"})

    with ThreadPoolExecutor(len(images)) as pool:
        responses = list(pool.map(send, range(len(images))))
    for response, want in zip(responses, expected):
        assert response.status_code == 200, response.text
        (result,) = response.json()["predictions"]
        assert_same_predictions(result["predictions"], want)
    # One forward pass: every request of a TorchServe batch records the same inference time.
    lines = v1_service.wait_for_logs(lambda line: line.get("event") == "prediction"
                                     and str(line.get("request_id", "")).startswith("v1-batch-"), count=len(images))
    inference = {line["timing_ms"]["inference"] for line in lines}
    assert len(inference) == 1, f"the {len(images)} requests were not one batch: inference ms {sorted(inference)}"


def test_bad_instances_fail_inline_and_bad_requests_as_kserve_errors(v1_service):
    mixed = v1_predict(v1_service, [{"data": b64(jpeg_bytes())}, {"data": b64(b"plain text")}, {"data": "@@@"}])
    assert mixed.status_code == 200
    assert [r["status"] for r in mixed.json()["predictions"]] == [200, 415, 400]
    no_instances = requests.post(predict_url(v1_service), json={"inputs": []}, headers=AUTH, timeout=30)
    assert "instances" in assert_kserve_error(no_instances, 400, "missing_image")["error"]
    broken = requests.post(predict_url(v1_service), data=b"{not json", headers=AUTH, timeout=30)
    assert_kserve_error(broken, 400, "invalid_json")
    too_many = v1_predict(v1_service, [b64(png_bytes())] * (BY_NAME["MAX_IMAGES_PER_REQUEST"].parse() + 1))
    assert_kserve_error(too_many, 400, "too_many_images")
    huge = requests.post(predict_url(v1_service), data=b"x" * (MAX_FILE_SIZE + 1), headers=AUTH, timeout=60)
    assert_kserve_error(huge, 413, "payload_too_large")


def test_unknown_model_method_and_route(v1_service):
    assert_kserve_error(requests.post(predict_url(v1_service, "other"), json={"instances": []}, headers=AUTH,
                                      timeout=10), 404, "not_found")
    wrong_method = requests.get(predict_url(v1_service), timeout=10)
    assert_kserve_error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["Allow"] == "POST"
    post_ready = requests.post(v1_service.url(f"/v1/models/{MODEL}"), timeout=10)
    assert_kserve_error(post_ready, 405, "method_not_allowed")
    assert post_ready.headers["Allow"] == "GET, HEAD"
    for path in (f"/v1/models/{MODEL}:explain", "/v1", "/v1/other", f"/v1/models/{MODEL}/versions/1"):
        assert_kserve_error(requests.get(v1_service.url(path), timeout=10), 404, "not_found")


def test_api_keys_guard_v1_as_they_guard_predict(v1_service):
    image = b64(jpeg_bytes())
    for response in (requests.post(predict_url(v1_service), json={"instances": [image]}, timeout=30),
                     requests.post(predict_url(v1_service), json={"instances": [image]},
                                   headers={"X-API-Key": "wrong-key-0123456789"}, timeout=30),
                     requests.get(v1_service.url("/v1/models"), timeout=10)):
        assert_kserve_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
    assert requests.post(v1_service.url("/predict"), data=jpeg_bytes(), timeout=30).status_code == 401


def test_load_beyond_max_inflight_is_shed_as_on_predict(v1_service):
    clients = 4 * BATCH_SIZE
    barrier = threading.Barrier(clients)
    image = b64(jpeg_bytes(320, 240, seed=50))

    def send(_index: int) -> requests.Response:
        barrier.wait()
        return v1_predict(v1_service, [{"data": image}])

    with ThreadPoolExecutor(clients) as pool:
        responses = list(pool.map(send, range(clients)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    for response in responses:
        if response.status_code == 503:
            assert_kserve_error(response, 503, "overloaded")
            assert response.headers["Retry-After"] == "1"


# ----------------------------------------------------------------------------------- unchanged clients


@pytest.fixture(scope="module")
def kserve_python():
    try:
        return kserve_client_python()
    except KServeClientUnavailable as error:  # CI reaches pip's index: failing here is a real failure
        pytest.fail(f"KServe's client could not be installed, so it cannot be tested: {error}")


def test_kserve_rest_client_v1_and_v2_on_one_port(v1_service, kserve_python, tmp_path):
    paths = []
    for index, image in enumerate((jpeg_bytes(200, 150, seed=60), png_bytes(120, 90, seed=61))):
        paths.append(tmp_path / f"image{index}")
        paths[-1].write_bytes(image)
    code, report = run_in_kserve_venv("scripts/client/kserve_rest_check.py", "--url", v1_service.base_url,
                                      "--api-key", KEY, "--top", "3", *[arg for p in paths for arg in ("--image", str(p))])
    print(json.dumps(report, indent=1))  # the answers, for the record (pytest -s)
    assert code == 0 and report["ok"], report
    expected = [classic_predict(v1_service, p.read_bytes(), 3) for p in paths]
    assert [[c for c, _ in row] for row in report["v1"]["top"]] == [[p["class_id"] for p in e] for e in expected]
    assert [[c for c, _ in row] for row in report["v2"]["top"]] == [[p["class_id"] for p in e] for e in expected]


def test_tritonclient_http_on_the_same_port(v1_service):
    client = httpclient.InferenceServerClient(v1_service.base_url.removeprefix("http://"))
    # (Copies: tritonclient adds its own headers to the dict it is given.)
    assert client.is_server_live(headers=dict(AUTH)) and client.is_server_ready(headers=dict(AUTH))
    assert client.is_model_ready(MODEL, headers=dict(AUTH))
    image = jpeg_bytes(200, 150, seed=60)
    tensor = httpclient.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([image], dtype=np.object_), binary_data=True)
    result = client.infer(MODEL, [tensor], headers=dict(AUTH))
    probabilities = result.as_numpy("probabilities")
    top = [int(i) for i in np.argsort(-probabilities[0], kind="stable")[:3]]
    assert top == [p["class_id"] for p in classic_predict(v1_service, image, 3)]
