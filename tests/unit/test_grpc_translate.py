"""gRPC <-> HTTP v2 translation (scripts/service/grpc_front/translate.py) and the front's HTTP client's reader
(scripts/service/grpc_front/upstream.py), without a server: requests built by tritonclient.grpc's own
code, read back by the handler's own v2 parser (handler/wire_v2.py)."""

from __future__ import annotations

import asyncio
import json
import struct

import grpc
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton
from tritonclient.grpc._utils import _get_inference_request
from tritonclient.utils import deserialize_bytes_tensor

from handler import wire_v2
from handler.errors import InvalidJson
from scripts.service.grpc_front.proto import load_protocol
from scripts.service.grpc_front.translate import (
    GrpcFailure,
    api_key_from,
    check_model_name,
    failure_from_http,
    infer_http_request,
    infer_response,
    model_path,
    peer_address,
    request_id_from,
    upstream_headers,
)
from scripts.service.grpc_front.upstream import read_answer
from tests.support import jpeg_bytes, png_bytes

PROTOCOL = load_protocol()
IMAGES = [jpeg_bytes(40, 30, seed=2), png_bytes(16, 12)]


def triton_request(images=IMAGES, outputs=None, request_id="", parameters=None, version=""):
    """tritonclient.grpc's ModelInferRequest, read into our own message class (the bytes on the wire)."""
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    message = _get_inference_request("resnet50", [tensor], version, request_id, outputs, 0, False, False, 0, None,
                                     parameters)
    return PROTOCOL.ModelInferRequest.FromString(message.SerializeToString())


def handler_view(upstream, classes=4):
    """What the handler's v2 parser makes of the translated request."""
    headers = {k.lower(): v for k, v in upstream.headers.items()}
    return wire_v2.parse_infer_request({"body": upstream.body}, headers, classes, 16)


# ------------------------------------------------------------------------ requests
def test_raw_input_contents_reach_the_handler_unchanged():
    upstream = infer_http_request(triton_request(request_id="r-1"), {"X-Request-ID": "abc"})
    assert upstream.method == "POST" and upstream.path == "/v2/models/resnet50/infer"
    assert upstream.headers["X-Request-ID"] == "abc"
    assert upstream.headers["Content-Type"] == "application/octet-stream"
    parsed = handler_view(upstream)
    assert parsed.parsed.images == tuple(IMAGES)
    assert parsed.id == "r-1"
    # Always binary outputs (raw_output_contents), every output when none is named.
    assert parsed.output == wire_v2.RequestedOutput(binary=True, classification=0)


def test_bytes_contents_are_serialised_like_raw_contents():
    request = PROTOCOL.ModelInferRequest(model_name="resnet50")
    tensor = request.inputs.add(name="image", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend(IMAGES)
    assert handler_view(infer_http_request(request, {})).parsed.images == tuple(IMAGES)
    assert infer_http_request(request, {}).body.endswith(infer_http_request(triton_request(), {}).body[-100:])


def test_classification_and_parameters_mean_what_they_mean_over_http():
    outputs = [triton.InferRequestedOutput("probabilities", class_count=3)]
    request = triton_request(outputs=outputs, parameters={"note": "kept"})
    request.parameters["binary_data_output"].bool_param = False  # (tritonclient reserves it; others may send it)
    upstream = infer_http_request(request, {})
    header = json.loads(upstream.body[:int(upstream.headers["Inference-Header-Content-Length"])])
    assert header["parameters"] == {"note": "kept", "binary_data_output": True}
    assert header["outputs"] == [{"name": "probabilities", "parameters": {"classification": 3, "binary_data": True}}]
    assert handler_view(upstream).output == wire_v2.RequestedOutput(binary=True, classification=3)


def test_versions_and_odd_names_are_percent_encoded():
    assert infer_http_request(triton_request(version="2.0"), {}).path == "/v2/models/resnet50/versions/2.0/infer"
    assert model_path("a/b c", "1 0") == "/v2/models/a%2Fb%20c/versions/1%200"


@pytest.mark.parametrize("build, message", [
    (lambda r: r.raw_input_contents.append(b"extra"), "raw_input_contents has 2 entries for 1 inputs"),
    (lambda r: r.inputs[0].contents.bytes_contents.append(b"x"), "has both contents and raw_input_contents"),
])
def test_tensors_the_front_cannot_translate_are_invalid_argument(build, message):
    request = triton_request(IMAGES[:1])
    build(request)
    with pytest.raises(GrpcFailure) as refused:
        infer_http_request(request, {})
    assert refused.value.status == grpc.StatusCode.INVALID_ARGUMENT and refused.value.code == "bad_request"
    assert message in refused.value.message


def test_typed_contents_go_as_json_for_the_handler_to_refuse():
    request = PROTOCOL.ModelInferRequest(model_name="resnet50")
    request.inputs.add(name="image", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1.0, 2.0])
    with pytest.raises(InvalidJson, match="datatype BYTES"):
        handler_view(infer_http_request(request, {}))


def test_empty_model_name_is_not_found():
    with pytest.raises(GrpcFailure) as refused:
        check_model_name("", "resnet50")
    assert refused.value.status == grpc.StatusCode.NOT_FOUND and '"resnet50"' in refused.value.message


# ---------------------------------------------------------------------------- answers
@pytest.mark.parametrize("classification", [0, 2])
def test_the_handlers_binary_answer_becomes_raw_output_contents(classification):
    request = handler_view(infer_http_request(triton_request(
        outputs=[triton.InferRequestedOutput("probabilities", class_count=classification)], request_id="r-2"), {}))
    probabilities = [torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.4, 0.3, 0.2, 0.1])]
    body, _, length = wire_v2.format_response(request, probabilities, ["a", "b", "c", "d"], "resnet50", "1.0")
    response = infer_response(PROTOCOL, 200, {"inference-header-content-length": str(length)}, body)
    assert (response.model_name, response.model_version, response.id) == ("resnet50", "1.0", "r-2")
    [output] = response.outputs
    if classification:
        assert (output.datatype, list(output.shape)) == ("BYTES", [2, 2])
        strings = deserialize_bytes_tensor(response.raw_output_contents[0])
        assert [s.decode() for s in strings] == ["0.400000:3:d", "0.300000:2:c", "0.400000:0:a", "0.300000:1:b"]
    else:
        assert (output.datatype, list(output.shape)) == ("FP32", [2, 4])
        values = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 4)
        np.testing.assert_array_equal(values, torch.stack(probabilities).numpy())
    assert not output.HasField("contents") and not output.parameters


def test_an_answer_in_json_data_is_still_raw():
    body = json.dumps({"model_name": "m", "model_version": "1", "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]}]}).encode()
    response = infer_response(PROTOCOL, 200, {}, body)
    assert struct.unpack("<2f", response.raw_output_contents[0]) == (0.25, 0.75)


@pytest.mark.parametrize("status, code, expected", [
    (400, "invalid_image", grpc.StatusCode.INVALID_ARGUMENT),
    (415, "unsupported_media_type", grpc.StatusCode.INVALID_ARGUMENT),
    (401, "unauthorized", grpc.StatusCode.UNAUTHENTICATED),
    (404, "not_found", grpc.StatusCode.NOT_FOUND),
    (413, "payload_too_large", grpc.StatusCode.RESOURCE_EXHAUSTED),
    (429, "rate_limited", grpc.StatusCode.RESOURCE_EXHAUSTED),
    (503, "overloaded", grpc.StatusCode.UNAVAILABLE),
    (504, "timeout", grpc.StatusCode.DEADLINE_EXCEEDED),
    (500, "internal_error", grpc.StatusCode.INTERNAL),
])
def test_http_errors_become_statuses_with_the_same_message_and_code(status, code, expected):
    body = json.dumps({"error": f"message for {code}", "code": code, "request_id": "rid-1"}).encode()
    retry = {"retry-after": "1"} if status in (429, 503, 504) else {}
    failure = failure_from_http(status, {"x-request-id": "rid-1", **retry}, body)
    assert (failure.status, failure.code, failure.message) == (expected, code, f"message for {code}")
    metadata = dict(failure.trailing_metadata())
    assert metadata["x-error-code"] == code and metadata["x-request-id"] == "rid-1"
    if retry:
        assert metadata["retry-after"] == "1" and metadata["grpc-retry-pushback-ms"] == "1000"
    else:
        assert "retry-after" not in metadata and "grpc-retry-pushback-ms" not in metadata


def test_a_non_json_error_is_told_safely():
    failure = failure_from_http(502, {}, b"<html>Bad Gateway</html>")
    assert failure.status == grpc.StatusCode.UNAVAILABLE and failure.code == "internal_error"
    assert "html" not in failure.message


# ------------------------------------------------------------------------- metadata in
def test_request_ids_keys_and_peers():
    assert request_id_from({"x-request-id": "client-id_1.2:3"}) == "client-id_1.2:3"
    generated = request_id_from({"x-request-id": "bad id\n"})
    assert len(generated) == 32 and generated != request_id_from({})
    assert api_key_from({"authorization": "Bearer k1"}) == "k1" and api_key_from({"x-api-key": "k2"}) == "k2"
    assert api_key_from({"authorization": "Basic abc"}) is None and api_key_from({}) is None
    assert peer_address("ipv4:10.1.2.3:5555") == "10.1.2.3" and peer_address("ipv6:[::1]:5555") == "::1"
    assert peer_address("unix:/tmp/x") is None
    headers = upstream_headers({"authorization": "Bearer k1"}, "ipv4:10.1.2.3:5555", "rid")
    assert headers == {"X-Request-ID": "rid", "X-API-Key": "k1", "X-Grpc-Client-Address": "10.1.2.3"}
    # A key with a line break would split the HTTP request: it is left out (and so refused as missing).
    assert "X-API-Key" not in upstream_headers({"x-api-key": "k\r\nX-Evil: 1"}, "", "rid")


# ------------------------------------------------------------------------ nginx's answers
def read(raw: bytes, method: str = "POST"):
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_answer(reader, method)
    return asyncio.run(go())


def test_reader_understands_length_chunked_and_close_delimited_answers():
    answer, keep = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-ID: a\r\n\r\nhelloNEXT")
    assert (answer.status, answer.body, answer.headers["x-request-id"], keep) == (200, b"hello", "a", True)
    answer, keep = read(b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
    assert (answer.status, answer.body, keep) == (503, b"abcde", True)
    answer, keep = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert keep is False
    answer, keep = read(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    assert (answer.body, keep) == (b"until the end", False)
