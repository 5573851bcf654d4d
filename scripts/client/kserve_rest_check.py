#!/usr/bin/env python3
"""KServe's own REST client (kserve.InferenceRESTClient), unchanged, against this service with protocol v1
and protocol v2 on one port; prints one JSON object with what it was told.

Runs in KServe's client venv (kserve pins psutil<6 and protobuf<7: scripts/client/kserve_venv.sh):

    "$(scripts/client/kserve_venv.sh)" scripts/client/kserve_rest_check.py --url http://127.0.0.1:5000 \\
        --image tests/fixtures/sample.jpg [--image another.png] [--api-key KEY] [--top 5]

v1 (RESTConfig(protocol="v1")): is_model_ready; infer {"instances": [{"data": <base64>}, ...]} ->
{"predictions": [...]}, one result per image; an instance that is no image, answered inline; another
model name, KServe's 404. v2 (protocol="v2"): is_server_live, is_server_ready, is_model_ready; infer with
the images as one BYTES tensor (binary data, the client's default for numpy), read back as FP32
``probabilities``; the classification extension. Both protocols must name the same top class per image.
Exit 0 when every call answered as the protocol says, 1 otherwise (``checks`` says which). Imports
nothing of this repository: only kserve, httpx and numpy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

MODEL = "resnet50"


def top_classes(row: np.ndarray, k: int) -> list[list]:
    order = np.argsort(-row, kind="stable")[:k]
    return [[int(i), round(float(row[i]), 6)] for i in order]


async def refused(call) -> dict:
    """What an HTTP error said (status and JSON body); the client raises httpx.HTTPStatusError for it."""
    try:
        await call
    except httpx.HTTPStatusError as error:
        try:
            body = error.response.json()
        except ValueError:
            body = error.response.text[:300]
        return {"status": error.response.status_code, "body": body}
    return {"status": None, "body": "no error raised"}


async def check_v1(url: str, images: list[bytes], headers: dict, model: str, top: int) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=60))
    try:
        ready = await client.is_model_ready(url, model, headers=headers)
        instances = [{"data": base64.b64encode(image).decode()} for image in images]
        answer = await client.infer(url, {"instances": [{**i, "top_k": top} for i in instances]},
                                    model_name=model, headers=headers)
        mixed = await client.infer(url, {"instances": [instances[0], {"data": base64.b64encode(b"text").decode()}]},
                                   model_name=model, headers=headers)
        other_infer = await refused(client.infer(url, {"instances": instances[:1]}, model_name="other", headers=headers))
        other_ready = await refused(client.is_model_ready(url, "other", headers=headers))
    finally:
        await client.close()
    results = answer.get("predictions") or []
    return {"is_model_ready": ready, "answer_keys": sorted(answer), "results": len(results),
            "top": [[[p["class_id"], p["probability"]] for p in r.get("predictions", [])] for r in results],
            "statuses": [r.get("status") for r in results],
            "mixed_statuses": [r.get("status") for r in mixed.get("predictions", [])],
            "mixed_error_code": ((mixed.get("predictions") or [{}, {}])[1].get("error") or {}).get("code"),
            "other_model_infer": other_infer, "other_model_ready": other_ready}


async def check_v2(url: str, images: list[bytes], headers: dict, model: str, top: int) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    try:
        live = await client.is_server_live(url, headers=headers)
        ready = await client.is_server_ready(url, headers=headers)
        model_ready = await client.is_model_ready(url, model, headers=headers)
        tensor = InferInput(name="image", shape=[len(images)], datatype="BYTES")
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
        response = await client.infer(url, InferRequest(model_name=model, infer_inputs=[tensor]),
                                      model_name=model, headers=headers)
        probabilities = response.outputs[0].as_numpy()
        tensor = InferInput(name="image", shape=[len(images)], datatype="BYTES")
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
        classified = await client.infer(
            url, InferRequest(model_name=model, infer_inputs=[tensor],
                              request_outputs=[RequestedOutput("probabilities", {"classification": top})]),
            model_name=model, headers=headers)
    finally:
        await client.close()
    labels = classified.outputs[0].as_numpy()
    return {"is_server_live": live, "is_server_ready": ready, "is_model_ready": model_ready,
            "output": {"name": response.outputs[0].name, "datatype": response.outputs[0].datatype,
                       "shape": list(probabilities.shape)},
            "row_sums": [round(float(s), 4) for s in probabilities.sum(axis=1)],
            "top": [top_classes(row, top) for row in probabilities],
            "classification": [[v.decode() if isinstance(v, bytes) else str(v) for v in row] for row in labels]}


async def check(url: str, images: list[bytes], api_key: str | None, model: str, top: int) -> dict:
    headers = {"X-API-Key": api_key} if api_key else {}
    v1 = await check_v1(url, images, headers, model, top)
    v2 = await check_v2(url, images, headers, model, top)
    n = len(images)
    checks = {
        "v1_model_ready": v1["is_model_ready"] is True,
        "v1_one_result_per_instance": v1["answer_keys"] == ["predictions"] and v1["results"] == n
        and v1["statuses"] == [200] * n and all(len(t) == top for t in v1["top"]),
        "v1_bad_instance_inline": v1["mixed_statuses"] == [200, 415] and v1["mixed_error_code"] == "unsupported_media_type",
        "v1_other_model_404": v1["other_model_infer"]["status"] == 404 and v1["other_model_ready"]["status"] == 404,
        "v2_live_and_ready": v2["is_server_live"] is True and v2["is_server_ready"] is True
        and v2["is_model_ready"] is True,
        "v2_probabilities": v2["output"]["datatype"] == "FP32" and v2["output"]["shape"][0] == n
        and all(abs(s - 1) < 1e-3 for s in v2["row_sums"]),
        "v2_classification": len(v2["classification"]) == n and all(len(row) == top for row in v2["classification"]),
        "v1_and_v2_agree": [t[0][0] for t in v1["top"]] == [t[0][0] for t in v2["top"]],
    }
    return {"url": url, "model": model, "images": n, "v1": v1, "v2": v2, "checks": checks, "ok": all(checks.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the service's base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--image", action="append", type=Path, required=True)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args(argv)
    images = [path.read_bytes() for path in args.image]
    try:
        report = asyncio.run(check(args.url, images, args.api_key, args.model, args.top))
    except Exception as error:  # noqa: BLE001 - said in the JSON, the exit code fails
        report = {"url": args.url, "ok": False, "error": f"{type(error).__name__}: {error}"}
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
