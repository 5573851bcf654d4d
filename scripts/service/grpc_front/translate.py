"""gRPC <-> the Open Inference Protocol's HTTP form: pure functions, no server, no I/O.

The gRPC front (scripts/service/grpc_front/server.py) is one more wire format onto the same handler
stages: it turns each ``ModelInfer`` into the HTTP v2 *binary* request that nginx already routes to
the handler (``POST /v2/models/NAME[/versions/V]/infer``, ``Inference-Header-Content-Length``, the
BYTES tensor as 4-byte little-endian lengths and bytes: exactly the layout of
``raw_input_contents``), and the binary answer back into ``raw_output_contents``. Every check of
the request (tensor names, datatypes, shapes, images, ``classification``) is the handler's, with
the handler's messages. An HTTP error answer becomes a gRPC status with the same message, and
trailing metadata carrying the stable code, the request id and, where a retry may help, the delay.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import grpc

REQUEST_ID_KEY = "x-request-id"
ERROR_CODE_KEY = "x-error-code"
RETRY_AFTER_KEY = "retry-after"
# gRPC's own retry policy (service config "retryPolicy", which kserve.InferenceGRPCClient enables
# for UNAVAILABLE) waits this long before its next attempt instead of its backoff.
PUSHBACK_KEY = "grpc-retry-pushback-ms"
# nginx's rule for a client's X-Request-ID (config/nginx.conf.template, map $http_x_request_id).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
BINARY_CONTENT_TYPE = "application/octet-stream"
HEADER_LENGTH = "inference-header-content-length"

# HTTP status of the handler's or nginx's answer -> gRPC status (the stable code travels beside it).
_STATUS_BY_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,        # invalid_image, missing_image, invalid_json, ...
    401: grpc.StatusCode.UNAUTHENTICATED,         # unauthorized: API_KEYS set, no or a wrong key
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,               # unknown model or version
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    # payload_too_large (bytes or decoded pixels): the family of gRPC's own refusal of a message over
    # its size limit, and not one a retry policy repeats.
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,        # unsupported_media_type: not an image (a text file)
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,      # rate_limited (RATE_LIMIT_RPS), with retry information
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,             # overloaded (MAX_INFLIGHT) or model_unavailable
    504: grpc.StatusCode.DEADLINE_EXCEEDED,       # timeout: REQUEST_TIMEOUT passed
    507: grpc.StatusCode.UNAVAILABLE,
}


@dataclass
class GrpcFailure(Exception):
    """A failed call as the client is told it: status, safe message, stable code, request id."""

    status: grpc.StatusCode
    code: str
    message: str
    request_id: str = ""
    retry_after_s: int | None = None
    upstream_status: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = [(ERROR_CODE_KEY, self.code)]
        if self.request_id:
            pairs.append((REQUEST_ID_KEY, self.request_id))
        if self.retry_after_s is not None:
            pairs += [(RETRY_AFTER_KEY, str(self.retry_after_s)), (PUSHBACK_KEY, str(self.retry_after_s * 1000))]
        return tuple(pairs)


@dataclass(frozen=True)
class UpstreamRequest:
    """What the front sends to nginx's loopback server for the gRPC front."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


# ------------------------------------------------------------------------ metadata and ids
def request_id_from(metadata: Mapping[str, str]) -> str:
    """The client's x-request-id when nginx would keep it too, else a new one (32 hex digits, as
    nginx's $request_id)."""
    given = metadata.get(REQUEST_ID_KEY, "")
    return given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def api_key_from(metadata: Mapping[str, str]) -> str | None:
    """``authorization: Bearer K`` (gRPC's usual way) or ``x-api-key: K`` (the HTTP header's name)."""
    if metadata.get("x-api-key"):
        return metadata["x-api-key"]
    scheme, _, token = metadata.get("authorization", "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def peer_address(peer: str) -> str | None:
    """The client's IP from grpc's ``context.peer()`` ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None  # unix sockets and the like: nginx keeps 127.0.0.1


def upstream_headers(metadata: Mapping[str, str], peer: str, request_id: str) -> dict[str, str]:
    """The headers nginx's loopback server for the front reads: the request id, the API key, and the
    gRPC client's address (its real_ip_header, so RATE_LIMIT_RPS counts per gRPC client)."""
    headers = {"X-Request-ID": request_id}
    key = api_key_from(metadata)
    if key is not None and _printable(key):
        headers["X-API-Key"] = key
    address = peer_address(peer)
    if address:
        headers["X-Grpc-Client-Address"] = address
    return headers


def _printable(value: str) -> bool:
    return all(32 < ord(c) < 127 for c in value)


# ---------------------------------------------------------------------------------- paths
def model_path(name: str, version: str = "") -> str:
    """``/v2/models/NAME[/versions/V]``, each part percent-encoded (nginx decodes it again)."""
    path = "/v2/models/" + quote(name, safe="")
    return path + ("/versions/" + quote(version, safe="") if version else "")


def check_model_name(name: str, served: str) -> None:
    """An empty name has no route (``/v2/models//infer``): refused here, with nginx's message for an
    unknown model. Any other name or version is nginx's to judge (config/nginx-grpc-server.part)."""
    if not name:
        raise GrpcFailure(grpc.StatusCode.NOT_FOUND, "not_found",
                          f'Unknown model: this server serves the model "{served}".')


# ------------------------------------------------------------------------- ModelInfer -> HTTP
def parameter_value(parameter: Any) -> Any:
    """An InferParameter's value as JSON (None when none of its oneof is set)."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def parameters_json(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in ((k, parameter_value(p)) for k, p in parameters.items())
            if value is not None}


def serialize_bytes_elements(elements: Iterable[bytes]) -> bytes:
    """A BYTES tensor in the binary form: each element a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


_TYPED_CONTENTS = ("bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents",
                   "fp32_contents", "fp64_contents")


def infer_http_request(request: Any, headers: Mapping[str, str]) -> UpstreamRequest:
    """A ModelInferRequest as the HTTP v2 binary request the handler reads (handler/wire_v2.py).

    BYTES inputs travel as binary data: ``raw_input_contents[i]`` unchanged (it already has the
    binary layout), or ``contents.bytes_contents`` serialised into it. Typed contents of other
    kinds go as JSON ``data``, for the handler to refuse with its own message. Every output is
    asked for as binary (``raw_output_contents``), as Triton answers over gRPC; the rest of the
    parameters pass as they are, so they mean what they mean over HTTP."""
    raws = list(request.raw_input_contents)
    if raws and len(raws) != len(request.inputs):
        raise GrpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "bad_request",
                          f"raw_input_contents has {len(raws)} entries for {len(request.inputs)} inputs: "
                          "give one per input, in the order of inputs.")
    inputs, binary = [], []
    for position, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        parameters = parameters_json(tensor.parameters)
        parameters.pop("binary_data_size", None)  # ours to set
        contents = tensor.contents
        typed = next((kind for kind in _TYPED_CONTENTS if len(getattr(contents, kind))), None)
        if raws:
            if typed or len(contents.bytes_contents):
                raise GrpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "bad_request",
                                  f"Input {tensor.name[:40]!r} has both contents and raw_input_contents: "
                                  "give one of them.")
            data = raws[position]
        elif len(contents.bytes_contents):
            data = serialize_bytes_elements(contents.bytes_contents)
        else:
            data = None
            if typed:
                entry["data"] = list(getattr(contents, typed))
        if data is not None:
            parameters["binary_data_size"] = len(data)
            binary.append(data)
        if parameters:
            entry["parameters"] = parameters
        inputs.append(entry)
    document: dict[str, Any] = {}
    if request.id:
        document["id"] = request.id
    document["parameters"] = {**parameters_json(request.parameters), "binary_data_output": True}
    document["inputs"] = inputs
    if len(request.outputs):
        document["outputs"] = [{"name": output.name,
                                "parameters": {**parameters_json(output.parameters), "binary_data": True}}
                               for output in request.outputs]
    header = json.dumps(document, separators=(",", ":")).encode("utf-8")
    all_headers = {**headers, "Content-Type": BINARY_CONTENT_TYPE, "Inference-Header-Content-Length": str(len(header))}
    return UpstreamRequest("POST", model_path(request.model_name, request.model_version) + "/infer",
                           all_headers, header + b"".join(binary))


# ------------------------------------------------------------------------- HTTP -> ModelInfer
def _json_part(headers: Mapping[str, str], body: bytes) -> tuple[dict, bytes]:
    length = headers.get(HEADER_LENGTH, "")
    if length.isdigit() and 0 < int(length) <= len(body):
        header, rest = body[:int(length)], body[int(length):]
    else:
        header, rest = body, b""
    document = json.loads(header)
    if not isinstance(document, dict):
        raise ValueError("the answer is not a JSON object")
    return document, rest


def _raw_from_json(output: dict) -> bytes:
    """An output that came as JSON ``data`` (not asked for so, but possible), in the binary layout."""
    data = output.get("data") or []
    if output.get("datatype") == "BYTES":
        return serialize_bytes_elements(str(e).encode("utf-8") if not isinstance(e, bytes) else e for e in data)
    return struct.pack(f"<{len(data)}f", *data)


def infer_response(protocol: Any, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """The handler's answer as a ModelInferResponse (``raw_output_contents``), or GrpcFailure."""
    if status != 200:
        raise failure_from_http(status, headers, body)
    try:
        document, raw = _json_part(headers, body)
        response = protocol.ModelInferResponse(model_name=str(document.get("model_name", "")),
                                               model_version=str(document.get("model_version", "")),
                                               id=str(document.get("id") or ""))
        offset = 0
        for output in document.get("outputs", []):
            response.outputs.add(name=output["name"], datatype=output["datatype"],
                                 shape=[int(d) for d in output["shape"]])
            size = (output.get("parameters") or {}).get("binary_data_size")
            if size is None:
                response.raw_output_contents.append(_raw_from_json(output))
                continue
            if offset + int(size) > len(raw):
                raise ValueError("the binary outputs are shorter than announced")
            response.raw_output_contents.append(raw[offset:offset + int(size)])
            offset += int(size)
        return response
    except (ValueError, KeyError, TypeError, struct.error) as error:
        raise GrpcFailure(grpc.StatusCode.INTERNAL, "internal_error", "The server failed to process the request.",
                          headers.get(REQUEST_ID_KEY, "")) from error


def failure_from_http(status: int, headers: Mapping[str, str], body: bytes) -> GrpcFailure:
    """An error answer of nginx or the handler ({"error": message, "code": ..., "request_id": ...})
    as the gRPC status a client is told, with the same message and code."""
    message, code, request_id = "The server failed to process the request.", "internal_error", ""
    try:
        document = json.loads(body)
        if isinstance(document, dict):
            error = document.get("error")
            if isinstance(error, dict):  # this service's /predict shape, should any route answer with it
                document = {**error, **document}
                error = error.get("message")
            message = str(error) if error else message
            code = str(document.get("code") or code)
            request_id = str(document.get("request_id") or "")
    except ValueError:
        pass
    retry = headers.get("retry-after", "")
    return GrpcFailure(
        status=_STATUS_BY_HTTP.get(status, grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.UNKNOWN),
        code=code, message=message, request_id=headers.get(REQUEST_ID_KEY, "") or request_id,
        retry_after_s=int(retry) if retry.isdigit() else None, upstream_status=status)


# ----------------------------------------------------------------------------- metadata RPCs
def server_metadata_response(protocol: Any, document: Mapping[str, Any]) -> Any:
    """GET /v2's body as a ServerMetadataResponse."""
    return protocol.ServerMetadataResponse(name=str(document.get("name", "")), version=str(document.get("version", "")),
                                           extensions=[str(e) for e in document.get("extensions", [])])


def model_metadata_response(protocol: Any, document: Mapping[str, Any]) -> Any:
    """GET /v2/models/NAME's body as a ModelMetadataResponse."""
    response = protocol.ModelMetadataResponse(name=str(document.get("name", "")),
                                              versions=[str(v) for v in document.get("versions", [])],
                                              platform=str(document.get("platform", "")))
    for kind in ("inputs", "outputs"):
        for tensor in document.get(kind, []):
            getattr(response, kind).add(name=tensor["name"], datatype=tensor["datatype"],
                                        shape=[int(d) for d in tensor["shape"]])
    return response
