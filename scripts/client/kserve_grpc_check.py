#!/usr/bin/env python3
"""KServe's own gRPC client (kserve.InferenceGRPCClient), unchanged, against this service's GRPC_PORT;
prints one JSON object with what it was told.

Runs in KServe's client venv (kserve cannot be imported beside tritonclient.grpc, kserve#3099):

    "$(scripts/client/kserve_venv.sh)" scripts/client/kserve_grpc_check.py --url 127.0.0.1:8081 \\
        --image tests/fixtures/sample.jpg [--image another.png] [--api-key KEY] [--top 5]

It asks: server live and ready, model ready, ServerMetadata / ModelMetadata; ModelInfer with the images
as BYTES, once as raw_input_contents (the client's numpy path) and once as contents.bytes_contents (its
list path), reading FP32 ``probabilities`` (their top classes per image); the classification extension
(``classification`` = --top); and an error case (a text body: INVALID_ARGUMENT and the message). Exit 0
when every call answered as the protocol says, 1 otherwise (the JSON says which). Imports nothing of
this repository: only kserve, grpc and numpy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

MODEL = "resnet50"
KSERVE_LOGGER = "kserve"  # kserve.logging's logger, which its gRPC client writes failed calls to


def top_classes(row: np.ndarray, k: int) -> list[list]:
    order = np.argsort(-row, kind="stable")[:k]
    return [[int(i), round(float(row[i]), 6)] for i in order]


async def check(url: str, images: list[bytes], top: int, api_key: str | None, model: str) -> dict:
    headers = (("authorization", f"Bearer {api_key}"),) if api_key else None
    # retries=0: a shed call (UNAVAILABLE) is reported as it is, not retried behind our back.
    client = InferenceGRPCClient(url=url, timeout=60, retries=0)
    report: dict = {"url": url, "ok": True, "calls": {}}

    async def call(name: str, coroutine):
        try:
            value = await coroutine
            report["calls"][name] = {"ok": True}
            return value
        except grpc.RpcError as error:
            report["calls"][name] = {"ok": False, "status": error.code().name, "message": error.details(),
                                     "trailing": dict(error.trailing_metadata() or ())}
            report["ok"] = False
            return None

    try:
        report["live"] = await call("ServerLive", client.is_server_live(headers=headers))
        report["ready"] = await call("ServerReady", client.is_server_ready(headers=headers))
        report["model_ready"] = await call("ModelReady", client.is_model_ready(model, headers=headers))
        server = await call("ServerMetadata", client._client_stub.ServerMetadata(
            _message("ServerMetadataRequest"), metadata=headers, timeout=60))
        if server is not None:
            report["server_metadata"] = {"name": server.name, "version": server.version,
                                         "extensions": list(server.extensions)}
        meta = await call("ModelMetadata", client._client_stub.ModelMetadata(
            _message("ModelMetadataRequest", name=model), metadata=headers, timeout=60))
        if meta is not None:
            report["model_metadata"] = {
                "name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
                "inputs": [[t.name, t.datatype, list(t.shape)] for t in meta.inputs],
                "outputs": [[t.name, t.datatype, list(t.shape)] for t in meta.outputs]}

        for form in ("raw", "bytes_contents"):
            tensor = InferInput(name="image", shape=[len(images)], datatype="BYTES")
            if form == "raw":
                tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
            else:
                tensor = InferInput(name="image", shape=[len(images)], datatype="BYTES", data=list(images))
            request = InferRequest(model_name=model, infer_inputs=[tensor], request_id=f"kserve-{form}")
            response = await call(f"ModelInfer[{form}]", client.infer(request, headers=headers))
            if response is not None:
                output = response.outputs[0]
                probabilities = output.as_numpy()
                report[f"infer_{form}"] = {
                    "id": response.id, "model_version": response.model_version, "name": output.name,
                    "datatype": output.datatype, "shape": list(output.shape),
                    "row_sums": [round(float(s), 4) for s in probabilities.sum(axis=1)],
                    "top": [top_classes(row, top) for row in probabilities]}

        tensor = InferInput(name="image", shape=[len(images)], datatype="BYTES")
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
        request = InferRequest(model_name=model, infer_inputs=[tensor],
                               request_outputs=[RequestedOutput("probabilities", {"classification": top})])
        response = await call("ModelInfer[classification]", client.infer(request, headers=headers))
        if response is not None:
            strings = response.outputs[0].as_numpy()
            report["classification"] = [[s.decode() if isinstance(s, bytes) else str(s) for s in row]
                                        for row in strings.reshape(len(images), -1)]

        text = InferInput(name="image", shape=[1], datatype="BYTES", data=[b"just some text, not an image"])
        kserve_logger = logging.getLogger(KSERVE_LOGGER)
        kserve_logger.disabled = True  # the client logs every failed call with a traceback: this one is meant to fail
        try:
            await client.infer(InferRequest(model_name=model, infer_inputs=[text]), headers=headers)
            report["text_file"] = {"status": "OK"}
            report["ok"] = False
        except grpc.RpcError as error:
            report["text_file"] = {"status": error.code().name, "message": error.details(),
                                   "trailing": dict(error.trailing_metadata() or ())}
            report["ok"] = report["ok"] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            kserve_logger.disabled = False
    finally:
        await client.close()
    return report


def _message(message_type: str, **fields):
    """A message of KServe's own generated protocol module (its client has no call for the metadata RPCs)."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2

    return getattr(grpc_predict_v2_pb2, message_type)(**fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="host:port of GRPC_PORT, e.g. 127.0.0.1:8081")
    parser.add_argument("--image", action="append", required=True, type=Path, help="an image file (repeatable)")
    parser.add_argument("--top", type=int, default=5, help="classes per image in the report and classification")
    parser.add_argument("--api-key", help="sent as authorization: Bearer KEY (when the service has API_KEYS)")
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args(argv)
    images = [path.read_bytes() for path in args.image]
    report = asyncio.run(check(args.url, images, args.top, args.api_key, args.model))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
