"""The Open Inference Protocol v2 (KServe v2, Triton) as one more wire format around the same stages.

nginx sends ``POST /v2/models/NAME[/versions/V]/infer`` to the same TorchServe endpoint as
``/predict`` with ``X-Wire-Format: v2``; the handler's stages then read the body with
``parse_infer_request`` (into the usual ``ParsedRequest``: every image of the request in one forward
pass, the multi-image path) and write the answer with ``format_response``, both through
``OPEN_INFERENCE_V2`` in handler/wire_formats.py. Nothing here knows TorchServe.

The model as the protocol sees it (also served by scripts/service/readiness.py as model metadata):

- input ``image``: BYTES, shape ``[-1]``, each element one encoded image (JPEG, PNG, ...);
- output ``probabilities``: FP32, shape ``[-1, classes]``, the softmax over every class.

Request body: JSON, where BYTES elements are base64 strings, or the binary-data extension: the
``Inference-Header-Content-Length`` header gives the JSON's length, the binary tensors follow it,
an input's ``"parameters": {"binary_data_size": n}`` says how many bytes are its own, and a BYTES
tensor is its elements, each a 4-byte little-endian length and the bytes (tritonclient's default).

Answer: the ``probabilities`` tensor as JSON ``data`` or, when requested (``"binary_data": true`` on
the output, or ``"binary_data_output": true`` on the request), as binary after the JSON header
(little-endian float32, ``Inference-Header-Content-Length`` set). The classification extension:
``"parameters": {"classification": k}`` on the output returns BYTES ``[N, k]`` strings
``"<probability>:<class_id>:<label>"``, most probable first, as Triton writes them.
Errors are the protocol's ``{"error": "<message>"}``, plus this service's stable ``code`` and the
``request_id``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from handler.errors import (
    InvalidImage,
    InvalidJson,
    InvalidTopK,
    MissingImage,
    ServiceError,
    TooManyImages,
    UnsupportedMediaType,
)
from handler.request_parsing import ParsedRequest

WIRE_HEADER = "x-wire-format"
HEADER_LENGTH = "inference-header-content-length"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class RequestedOutput:
    binary: bool = False
    classification: int = 0  # k > 0: the classification extension's top-k strings


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    output: RequestedOutput
    parsed: ParsedRequest


def is_v2(headers: Mapping[str, str]) -> bool:
    return headers.get(WIRE_HEADER, "").strip().lower() == "v2"


# ---------------------------------------------------------------------------------------- parsing
def parse_infer_request(data: Mapping[str, Any], headers: Mapping[str, str], num_classes: int,
                        max_images: int) -> InferRequest:
    """One v2 inference request (TorchServe's input dict and headers) -> images and options."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Compressed requests (Content-Encoding: {encoding[:20]}) "
                                   "are not supported.")
    body = data.get("body", data.get("data"))
    if isinstance(body, str):
        body = body.encode("utf-8", errors="surrogateescape")
    if not isinstance(body, (bytes, bytearray)) or not body:
        raise MissingImage('No image: the request body is empty; send {"inputs": [{"name": "image", ...}]}.')
    body = bytes(body)
    header_text, binary = _split_body(body, headers.get(HEADER_LENGTH))
    try:
        document = json.loads(header_text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidJson("The inference request header is not valid JSON.") from exc
    if not isinstance(document, dict):
        raise InvalidJson('The inference request must be a JSON object with "inputs".')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidJson('"id" must be a string.')
    images = _images(document.get("inputs"), binary, max_images)
    output = _requested_output(document, num_classes)
    parsed = ParsedRequest(images=images, top_k=output.classification or 1, source="v2", multi=True)
    return InferRequest(id=request_id, output=output, parsed=parsed)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None or header_length.strip() == "":
        return body, b""
    text = header_length.strip()
    if not text.isdigit() or not 0 < int(text) <= len(body):
        raise InvalidJson(f"Inference-Header-Content-Length must be a length within the body "
                          f"({len(body)} bytes), got {text[:20]!r}.")
    length = int(text)
    return body[:length], body[length:]


def _images(inputs: Any, binary: bytes, max_images: int) -> tuple[bytes | ServiceError, ...]:
    if not isinstance(inputs, list) or not inputs:
        raise MissingImage(f'No image: the request needs "inputs": [{{"name": "{INPUT_NAME}", '
                           f'"datatype": "BYTES", "shape": [N], ...}}].')
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidJson(f'The model has one input, "{INPUT_NAME}"; the request has {len(inputs)}.')
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise InvalidJson(f'Unknown input {str(tensor.get("name"))[:40]!r}; '
                          f'the model\'s input is "{INPUT_NAME}".')
    if tensor.get("datatype") != "BYTES":
        raise InvalidJson(f'Input "{INPUT_NAME}" has datatype BYTES (one encoded image per element), '
                          f'got {str(tensor.get("datatype"))[:20]!r}.')
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise InvalidJson(f'Input "{INPUT_NAME}" needs a "shape" such as [N].')
    count = math.prod(shape)
    if count == 0:
        raise MissingImage(f'No image: input "{INPUT_NAME}" has shape {shape}.')
    if count > max_images:
        raise TooManyImages(f"At most {max_images} images per request; this one has {count}.")
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidJson('"parameters" must be an object.')
    size = parameters.get("binary_data_size")
    if "data" in tensor:
        if size is not None:
            raise InvalidJson(f'Input "{INPUT_NAME}" has both "data" and binary_data_size.')
        if binary:
            raise InvalidJson("The body has binary data after the JSON that no input claims.")
        elements = _flatten(tensor["data"])
        if len(elements) != count:
            raise InvalidJson(f'Input "{INPUT_NAME}" has {len(elements)} elements for shape {shape}.')
        return tuple(_from_base64(element, position) for position, element in enumerate(elements))
    if size is None:
        raise MissingImage(f'No image: input "{INPUT_NAME}" has neither "data" nor binary data.')
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise InvalidJson(f'binary_data_size of input "{INPUT_NAME}" must be the {len(binary)} bytes '
                          f"after the JSON, got {str(size)[:20]}.")
    elements = _deserialize_bytes(binary)
    if len(elements) != count:
        raise InvalidJson(f'Input "{INPUT_NAME}" has {len(elements)} elements for shape {shape}.')
    return tuple(element or MissingImage(f'No image: element {position} of input "{INPUT_NAME}" is empty.')
                 for position, element in enumerate(elements))


def _flatten(value: Any) -> list:
    if not isinstance(value, list):
        raise InvalidJson(f'"data" of input "{INPUT_NAME}" must be a list of base64 strings.')
    flat: list = []
    for item in value:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _from_base64(value: Any, position: int) -> bytes | ServiceError:
    """One JSON element; a bad one fails as that element's error (the handler fails the request)."""
    if not isinstance(value, str):
        raise InvalidJson(f'The elements of input "{INPUT_NAME}" must be base64 strings.')
    try:
        decoded = base64.b64decode(_WHITESPACE.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        return InvalidImage(f'Element {position} of input "{INPUT_NAME}" is not valid base64.')
    return decoded or MissingImage(f'No image: element {position} of input "{INPUT_NAME}" is empty.')


def _deserialize_bytes(buffer: bytes) -> list[bytes]:
    """A binary BYTES tensor: each element a 4-byte little-endian length, then that many bytes."""
    elements, offset = [], 0
    while offset < len(buffer):
        if offset + 4 > len(buffer):
            raise InvalidJson("The binary BYTES tensor is truncated (an element's length is cut off).")
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + length > len(buffer):
            raise InvalidJson("The binary BYTES tensor is truncated (an element is shorter than its length).")
        elements.append(buffer[offset:offset + length])
        offset += length
    return elements


def _requested_output(document: dict, num_classes: int) -> RequestedOutput:
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidJson('"parameters" must be an object.')
    binary = parameters.get("binary_data_output", False) is True
    outputs = document.get("outputs")
    if outputs is None or outputs == []:
        return RequestedOutput(binary=binary)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise InvalidJson('"outputs" must be a list of {"name": ...} objects.')
    names = [o.get("name") for o in outputs]
    if any(name != OUTPUT_NAME for name in names) or len(names) != 1:
        raise InvalidJson(f'The model has one output, "{OUTPUT_NAME}"; requested {str(names)[:80]}.')
    requested = outputs[0].get("parameters") or {}
    if not isinstance(requested, dict):
        raise InvalidJson('"parameters" must be an object.')
    binary = requested.get("binary_data", binary) is True
    k = requested.get("classification", 0)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= num_classes:
        raise InvalidTopK(f"classification must be an integer between 1 and {num_classes}, "
                          f"got {str(k)[:20]}.")
    return RequestedOutput(binary=binary, classification=k)


# --------------------------------------------------------------------------------------- answers
def first_image_error(items: Sequence[Any]) -> ServiceError | None:
    """A v2 request is one tensor: its first bad image fails the request, naming the element."""
    for item in items:
        error = item.error
        if error is not None:
            prefix = f'Element {item.position} of input "{INPUT_NAME}": '
            message = error.message if error.message.startswith(("Element ", "No image: element")) \
                else prefix + error.message
            return type(error)(message)
    return None


def format_response(request: InferRequest, probabilities: Sequence[torch.Tensor], categories: Sequence[str],
                    model_name: str, model_version: str) -> tuple[bytes, str, int | None]:
    """The answer body, its content type and (for binary outputs) the JSON header's length."""
    matrix = torch.stack([p.float() for p in probabilities])  # (N, classes), as one forward pass gave it
    output: dict[str, Any] = {"name": OUTPUT_NAME}
    k = request.output.classification
    if k:
        values, indices = torch.topk(matrix, k=min(k, matrix.shape[1]), dim=1)
        strings = [f"{value:f}:{index}:{categories[index]}"
                   for row_values, row_indices in zip(values.tolist(), indices.tolist())
                   for value, index in zip(row_values, row_indices)]
        output.update(datatype="BYTES", shape=[matrix.shape[0], values.shape[1]])
        raw = b"".join(struct.pack("<I", len(e)) + e for e in (s.encode("utf-8") for s in strings)) \
            if request.output.binary else None
        data: list = strings
    else:
        output.update(datatype="FP32", shape=list(matrix.shape))
        array = matrix.cpu().numpy().astype("<f4", copy=False)
        raw = array.tobytes() if request.output.binary else None
        data = array.reshape(-1).tolist() if raw is None else []
    if raw is not None:
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = data
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = [output]
    header = json.dumps(response, separators=(",", ":")).encode("utf-8")
    if raw is None:
        return header, "application/json", None
    return header + raw, "application/octet-stream", len(header)


def error_body(error: ServiceError, request_id: str) -> dict:
    """The protocol's error body, {"error": "<message>"}, with the stable code and request id."""
    return {"error": error.message, "code": error.code, "request_id": request_id}
