"""The benchmark's ways to call the Open Inference Protocol v2: over HTTP with the binary tensor
extension, and over gRPC (scripts/bench/benchmark.py --protocols v2-http,v2-grpc).

Both send one image per call, built once: the HTTP body as tritonclient.http would send it (the JSON
header, then the BYTES tensor as a 4-byte little-endian length and the bytes), the gRPC message as
tritonclient.grpc would (the same bytes in ``raw_input_contents``). Each sender (one per client
thread) has its own connection: its own requests.Session, its own gRPC channel. A sender returns an
HTTP-like status, so both protocols count in the same tables (a gRPC status is mapped to its HTTP
twin: OK 200, UNAVAILABLE 503, ...; 0 when nothing answered).
"""

from __future__ import annotations

import json
import struct
from typing import Callable

import grpc
import requests

MODEL = "resnet50"
SERVICE = "inference.GRPCInferenceService"
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def bytes_tensor(images: list[bytes]) -> bytes:
    """A BYTES tensor in the binary layout of both protocols."""
    return b"".join(struct.pack("<I", len(image)) + image for image in images)


def v2_http_request(image: bytes, model: str = MODEL) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers of a v2 binary infer call with one image (every class back, binary)."""
    tensor = bytes_tensor([image])
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(tensor)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]},
                        separators=(",", ":")).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    return f"/v2/models/{model}/infer", header + tensor, headers


def v2_grpc_request(image: bytes, model: str = MODEL) -> bytes:
    """A serialised ModelInferRequest with one image in raw_input_contents (tritonclient.grpc's way)."""
    from scripts.service.grpc_front.proto import load_protocol

    protocol = load_protocol()
    request = protocol.ModelInferRequest(model_name=model, raw_input_contents=[bytes_tensor([image])])
    request.inputs.add(name="image", datatype="BYTES", shape=[1])
    request.outputs.add(name="probabilities")
    return request.SerializeToString()


def http_sender(url: str, body: bytes, headers: dict[str, str]) -> Callable[[float], Callable[[], int]]:
    def make(timeout: float) -> Callable[[], int]:
        session = requests.Session()

        def send() -> int:
            try:
                return session.post(url, data=body, headers=headers, timeout=timeout).status_code
            except requests.RequestException:
                return 0
        return send
    return make


def grpc_sender(target: str, message: bytes, metadata: tuple[tuple[str, str], ...] = ()
                ) -> Callable[[float], Callable[[], int]]:
    """``target`` host:port; ``message`` already serialised (sent as it is, the answer left unparsed)."""
    def make(timeout: float) -> Callable[[], int]:
        channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
        call = channel.unary_unary(f"/{SERVICE}/ModelInfer", request_serializer=lambda raw: raw,
                                   response_deserializer=lambda raw: raw)

        def send() -> int:
            try:
                call(message, timeout=timeout, metadata=metadata)
                return 200
            except grpc.RpcError as error:
                code = error.code()
                return _HTTP_STATUS.get(code, 0 if code is None else 500)
        return send
    return make
