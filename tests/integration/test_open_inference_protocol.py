"""The Open Inference Protocol v2 on :PORT through nginx, checked with the official client
(tritonclient[http]) and with raw HTTP for the error statuses; values equal /predict's."""

from __future__ import annotations

import base64
import json
import threading

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.service import MAX_FILE_SIZE
from tests.support import jpeg_bytes, png_bytes

pytestmark = pytest.mark.integration

MODEL = "resnet50"
IMAGES = [jpeg_bytes(320, 240, seed=3), png_bytes(80, 60)]


@pytest.fixture(scope="module")
def client(service):
    return httpclient.InferenceServerClient(url=service.base_url.removeprefix("http://"))


@pytest.fixture(scope="module")
def num_classes(service):
    return requests.get(service.url("/info"), timeout=10).json()["default"][0]["customizedMetadata"]["num_classes"]


@pytest.fixture(scope="module")
def predicted(service, num_classes):
    """/predict's answer for each image, every class (top_k = the class count)."""
    return [requests.post(service.url(f"/predict?top_k={num_classes}"), data=image, timeout=60).json()["predictions"]
            for image in IMAGES]


def image_input(images, binary=True) -> httpclient.InferInput:
    tensor = httpclient.InferInput("image", [len(images)], "BYTES")
    if binary:
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
    else:  # JSON: each element a base64 string
        tensor.set_data_from_numpy(np.array([base64.b64encode(i) for i in images], dtype=np.object_),
                                   binary_data=False)
    return tensor


def as_predict_order(probabilities: np.ndarray) -> list[tuple[int, float]]:
    return [(p["class_id"], p["probability"]) for p in
            sorted(({"class_id": i, "probability": round(float(v), 6)} for i, v in enumerate(probabilities)),
                   key=lambda p: -p["probability"])]


# -------------------------------------------------------------------------------- health, metadata
def test_server_and_model_health(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1.0")
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(MODEL, "9.9")
    assert {"binary_tensor_data", "classification"} <= set(client.get_server_metadata()["extensions"])


def test_model_metadata_has_the_archives_class_count(client, num_classes):
    meta = client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and "1.0" in meta["versions"]
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, num_classes]}]
    assert client.get_model_metadata(MODEL, "1.0")["outputs"] == meta["outputs"]
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata("no-such-model")
    assert raised.value.status() == "404"


# ------------------------------------------------------------------------------------------ infer
@pytest.mark.parametrize("binary", [True, False], ids=["binary-data", "json-data"])
def test_infer_equals_predict(client, predicted, num_classes, binary):
    outputs = None if binary else [httpclient.InferRequestedOutput("probabilities", binary_data=False)]
    result = client.infer(MODEL, [image_input(IMAGES, binary)], outputs=outputs, request_id=f"oip-{binary}")
    assert result.get_response()["id"] == f"oip-{binary}"
    assert result.get_response()["model_version"] == "1.0"
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(IMAGES), num_classes)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    for row, expected in zip(probabilities, predicted):
        top5 = as_predict_order(row)[:5]
        assert top5 == [(p["class_id"], p["probability"]) for p in expected[:5]]
    # The versioned URL answers the same.
    versioned = client.infer(MODEL, [image_input(IMAGES[:1], binary)], model_version="1.0", outputs=outputs)
    np.testing.assert_allclose(versioned.as_numpy("probabilities")[0], probabilities[0], atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_classification_extension_equals_predicts_top_k(client, predicted, binary):
    output = httpclient.InferRequestedOutput("probabilities", binary_data=binary, class_count=3)
    result = client.infer(MODEL, [image_input(IMAGES)], outputs=[output])
    strings = result.as_numpy("probabilities")
    assert strings.shape == (len(IMAGES), 3)
    for row, expected in zip(strings, predicted):
        decoded = [s.decode() if isinstance(s, bytes) else s for s in row]
        assert decoded == [f"{p['probability']:f}:{p['class_id']}:{p['label']}" for p in expected[:3]]
    print(f"\ntritonclient class_count=3 for one image: {strings[0].tolist()}")


def test_unknown_model_and_version_are_404(client):
    for model, version in (("no-such-model", ""), (MODEL, "9.9")):
        with pytest.raises(InferenceServerException) as raised:
            client.infer(model, [image_input(IMAGES[:1])], model_version=version)
        assert raised.value.status() == "404" and raised.value.message()


# ------------------------------------------------------------------------------- raw HTTP errors
def infer_url(service, model=MODEL):
    return service.url(f"/v2/models/{model}/infer")


def v2_json(images_b64, **extra) -> dict:
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images_b64)], "data": images_b64}],
            **extra}


def assert_v2_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"], body
    assert body["code"] == code and body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_plain_json_request_and_id_echo(service, predicted):
    body = v2_json([base64.b64encode(IMAGES[0]).decode()], id="raw-1")
    response = requests.post(infer_url(service), json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "raw-1" and answer["outputs"][0]["datatype"] == "FP32"
    top1 = max(range(len(answer["outputs"][0]["data"])), key=answer["outputs"][0]["data"].__getitem__)
    assert top1 == predicted[0][0]["class_id"]


@pytest.mark.parametrize("body, status, code", [
    (v2_json([base64.b64encode(IMAGES[0][:400]).decode()]), 400, "invalid_image"),
    (v2_json(["%%% not base64"]), 400, "invalid_image"),
    (v2_json([base64.b64encode(b"just text").decode()]), 415, "unsupported_media_type"),
    (v2_json([base64.b64encode(png_bytes(8, 8)).decode()] * 17), 400, "too_many_images"),
    ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, 400, "invalid_json"),
    ({"nothing": True}, 400, "missing_image"),
])
def test_error_statuses(service, body, status, code):
    assert_v2_error(requests.post(infer_url(service), json=body, timeout=60), status, code)


def test_malformed_binary_header_and_oversized_body(service):
    response = requests.post(infer_url(service), data=b"{}", timeout=30,
                             headers={"Inference-Header-Content-Length": "999"})
    assert_v2_error(response, 400, "invalid_json")
    too_big = b"\xff" * (MAX_FILE_SIZE + (1 << 20))
    assert_v2_error(requests.post(infer_url(service), data=too_big, timeout=60), 413, "payload_too_large")


def test_unknown_model_wrong_method_and_unknown_route(service):
    assert_v2_error(requests.post(infer_url(service, "other"), json=v2_json(["aGk="]), timeout=30),
                    404, "not_found")
    wrong = requests.get(infer_url(service), timeout=30)
    assert_v2_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST"
    assert requests.post(service.url("/v2/health/ready"), timeout=30).headers["Allow"] == "GET, HEAD"
    assert_v2_error(requests.get(service.url("/v2/repository/index"), timeout=30), 404, "not_found")


def test_overload_is_503_with_retry_after(service):
    """More concurrent requests than MAX_INFLIGHT: the excess is told 503 at once, as on /predict."""
    limit = int(service.env.get("MAX_INFLIGHT", "32"))
    body = json.dumps(v2_json([base64.b64encode(png_bytes(32, 32)).decode()]))
    barrier = threading.Barrier(limit + 8)
    responses: list[requests.Response] = []

    def send() -> None:
        barrier.wait()
        responses.append(requests.post(infer_url(service), data=body, timeout=120))

    threads = [threading.Thread(target=send) for _ in range(limit + 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    shed = [r for r in responses if r.status_code == 503]
    assert shed, [r.status_code for r in responses]
    assert {r.status_code for r in responses} <= {200, 503}
    body = assert_v2_error(shed[0], 503, "overloaded")
    assert shed[0].headers["Retry-After"] == "1" and body["error"]


# ------------------------------------------------------------------- TorchServe's field name
def test_multipart_field_data_is_accepted_on_predict(service, predicted):
    response = requests.post(service.url("/predict?top_k=3"), files={"data": ("a.jpg", IMAGES[0])}, timeout=60)
    assert response.status_code == 200, response.text
    assert [p["class_id"] for p in response.json()["predictions"]] == [p["class_id"] for p in predicted[0][:3]]
