"""The Open Inference Protocol v2 wire format (handler/wire_v2.py): requests built and answers read
with tritonclient's own (de)serialisation, then the handler end to end with TorchServe's own Context."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import serialize_byte_tensor

from handler import wire_v2
from handler.errors import InvalidImage, InvalidJson, InvalidTopK, MissingImage, TooManyImages, UnsupportedMediaType
from handler.resnet50_handler import ResNet50Handler
from tests.support import jpeg_bytes, png_bytes
from tests.unit.ts_context import failed_statuses, worker_context

V2 = {"X-Wire-Format": "v2"}
IMAGES = [jpeg_bytes(120, 90, seed=1), png_bytes(64, 48)]


def triton_request(images, binary_input=True, outputs=None, request_id="") -> tuple[bytes, dict]:
    """The body and headers tritonclient's InferenceServerClient.infer would send."""
    tensor = InferInput("image", [len(images)], "BYTES")
    if binary_input:
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
    else:
        encoded = [base64.b64encode(image) for image in images]
        tensor.set_data_from_numpy(np.array(encoded, dtype=np.object_), binary_data=False)
    body, json_size = _get_inference_request([tensor], request_id, outputs, 0, False, False, 0, None, None)
    headers = dict(V2)
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = str(json_size)
    return body, headers


def parse(body, headers, classes=1000, max_images=16):
    return wire_v2.parse_infer_request({"body": body}, {k.lower(): v for k, v in headers.items()}, classes,
                                       max_images)


# --------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_requests_parse_to_the_images(binary):
    body, headers = triton_request(IMAGES, binary_input=binary, request_id="r-1")
    request = parse(body, headers)
    assert request.parsed.images == tuple(IMAGES)
    assert request.parsed.multi and request.parsed.source == "v2"
    assert request.id == "r-1"
    # No outputs named: tritonclient asks for every output in binary.
    assert request.output == wire_v2.RequestedOutput(binary=True, classification=0)


def test_requested_output_binary_and_classification():
    body, headers = triton_request(IMAGES[:1], outputs=[InferRequestedOutput("probabilities", binary_data=False,
                                                                             class_count=3)])
    assert parse(body, headers).output == wire_v2.RequestedOutput(binary=False, classification=3)
    assert parse(body, headers).parsed.top_k == 3


def test_a_bad_base64_element_is_that_elements_error():
    document = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                            "data": [base64.b64encode(IMAGES[0]).decode(), "%%%"]}]}
    images = parse(json.dumps(document).encode(), V2).parsed.images
    assert images[0] == IMAGES[0]
    assert isinstance(images[1], InvalidImage) and "Element 1" in images[1].message


@pytest.mark.parametrize("document, error", [
    ({"inputs": []}, MissingImage),
    ({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}]}, InvalidJson),
    ({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, InvalidJson),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["aGk="]}]}, InvalidJson),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": "1", "data": ["aGk="]}]}, InvalidJson),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [17], "data": ["aGk="] * 17}]}, TooManyImages),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [5]}]}, InvalidJson),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}]}, MissingImage),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],
      "outputs": [{"name": "logits"}]}, InvalidJson),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],
      "outputs": [{"name": "probabilities", "parameters": {"classification": 1001}}]}, InvalidTopK),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}], "id": 7}, InvalidJson),
    ([1, 2], InvalidJson),
])
def test_malformed_requests_raise_typed_errors(document, error):
    with pytest.raises(error):
        parse(json.dumps(document).encode(), V2)


@pytest.mark.parametrize("mutate, headers", [
    (lambda body, n: body, {"Inference-Header-Content-Length": "0"}),
    (lambda body, n: body, {"Inference-Header-Content-Length": "999999"}),
    (lambda body, n: body, {"Inference-Header-Content-Length": "abc"}),
    (lambda body, n: body[:-3], None),  # binary tensor shorter than binary_data_size
    (lambda body, n: body + b"xx", None),
    (lambda body, n: b"{not json" + body[n:], None),
])
def test_malformed_binary_requests_are_400(mutate, headers):
    body, good_headers = triton_request(IMAGES[:1])
    length = int(good_headers["Inference-Header-Content-Length"])
    with pytest.raises(InvalidJson):
        parse(mutate(body, length), {**good_headers, **(headers or {})})


def test_empty_body_and_compression_are_refused():
    with pytest.raises(MissingImage):
        parse(b"", V2)
    body, headers = triton_request(IMAGES[:1])
    with pytest.raises(UnsupportedMediaType):
        parse(body, {**headers, "Content-Encoding": "gzip"})


def test_length_prefixed_elements_roundtrip_with_tritonclient():
    buffer = serialize_byte_tensor(np.array([b"ab", b"", b"xyz"], dtype=np.object_)).item()
    assert wire_v2._deserialize_bytes(buffer) == [b"ab", b"", b"xyz"]


# --------------------------------------------------------------------------------------- answers
CATEGORIES = [f"class {i}" for i in range(5)]
ROWS = [torch.tensor([0.1, 0.5, 0.05, 0.3, 0.05]), torch.tensor([0.7, 0.1, 0.1, 0.05, 0.05])]


def answer(output: wire_v2.RequestedOutput, request_id: str | None = "abc") -> InferResult:
    parsed = wire_v2.ParsedRequest(images=(b"x", b"y"), top_k=1, source="v2", multi=True)
    request = wire_v2.InferRequest(id=request_id, output=output, parsed=parsed)
    body, content_type, header_length = wire_v2.format_response(request, ROWS, CATEGORIES, "m", "1.0")
    assert content_type == ("application/octet-stream" if output.binary else "application/json")
    assert (header_length is not None) == output.binary
    return InferResult.from_response_body(body, header_length=header_length)


@pytest.mark.parametrize("binary", [True, False])
def test_probabilities_answer_reads_back_in_tritonclient(binary):
    result = answer(wire_v2.RequestedOutput(binary=binary))
    array = result.as_numpy("probabilities")
    assert array.dtype == np.float32 and array.shape == (2, 5)
    np.testing.assert_array_equal(array, torch.stack(ROWS).numpy())
    response = result.get_response()
    assert response["id"] == "abc" and response["model_name"] == "m" and response["model_version"] == "1.0"
    assert response["outputs"][0]["datatype"] == "FP32" and response["outputs"][0]["shape"] == [2, 5]


@pytest.mark.parametrize("binary", [True, False])
def test_classification_answer_is_tritons_strings(binary):
    array = answer(wire_v2.RequestedOutput(binary=binary, classification=2)).as_numpy("probabilities")
    assert array.shape == (2, 2)
    as_text = [[e.decode() if isinstance(e, bytes) else e for e in row] for row in array.tolist()]
    assert as_text == [["0.500000:1:class 1", "0.300000:3:class 3"], ["0.700000:0:class 0", "0.100000:1:class 1"]]


def test_id_is_left_out_when_the_request_has_none():
    assert "id" not in answer(wire_v2.RequestedOutput(), request_id=None).get_response()


# ------------------------------------------------------------------------------ handler end to end
@pytest.fixture(scope="module")
def handler(model_dir):
    h = ResNet50Handler()
    h.initialize(worker_context(model_dir))
    return h


def test_handler_answers_v2_like_predict(handler, model_dir, monkeypatch):
    forward_sizes = []
    original = handler.pipeline.probabilities
    monkeypatch.setattr(handler.pipeline, "probabilities",
                        lambda tensors: forward_sizes.append(len(tensors)) or original(tensors))
    body, headers = triton_request(IMAGES, request_id="req-7")
    k_body, k_headers = triton_request(IMAGES, binary_input=False,
                                       outputs=[InferRequestedOutput("probabilities", class_count=3)])
    context = worker_context(model_dir, [headers, k_headers, {"X-Top-K": "3"}])
    v2, classified, predict = handler.handle([{"body": body}, {"body": k_body}, {"body": IMAGES[0]}], context)
    assert forward_sizes == [5]  # every image of the three requests, one forward pass
    assert failed_statuses(context) == {}
    length = int(context.get_response_headers(0)["Inference-Header-Content-Length"])
    assert context.get_response_content_type(0) == "application/octet-stream"
    result = InferResult.from_response_body(v2, header_length=length)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, handler.pipeline.meta.num_classes)
    assert result.get_response()["id"] == "req-7"
    top = json.loads(predict)["predictions"]
    assert [int(i) for i in np.argsort(-probabilities[0])[:3]] == [p["class_id"] for p in top]
    assert [round(float(probabilities[0][p["class_id"]]), 6) for p in top] == [p["probability"] for p in top]
    strings = InferResult.from_response_body(
        classified, header_length=int(context.get_response_headers(1)["Inference-Header-Content-Length"])
    ).as_numpy("probabilities")
    assert [s.decode() for s in strings[0]] == [f"{p['probability']:f}:{p['class_id']}:{p['label']}" for p in top]


@pytest.mark.parametrize("images, status, code", [
    ([IMAGES[0], b"plain text, not an image"], 415, "unsupported_media_type"),
    ([IMAGES[0], IMAGES[0][:300]], 400, "invalid_image"),
])
def test_handler_v2_bad_image_fails_the_request_with_the_protocols_error(handler, model_dir, images, status, code):
    body, headers = triton_request(images)
    context = worker_context(model_dir, [{**headers, "X-Request-ID": "bad-1"}])
    (response,) = handler.handle([{"body": body}], context)
    assert context.get_response_status(0)[0] == status
    error = json.loads(response)
    assert isinstance(error["error"], str) and "Element 1" in error["error"]
    assert error["code"] == code and error["request_id"] == "bad-1"


def test_handler_without_the_wire_header_reads_predicts_forms(handler, model_dir):
    body, headers = triton_request(IMAGES[:1], binary_input=False)
    context = worker_context(model_dir, [{"Content-Type": "application/json"}])
    (response,) = handler.handle([{"body": body}], context)
    assert context.get_response_status(0)[0] == 400 and json.loads(response)["error"]["code"] == "missing_image"
