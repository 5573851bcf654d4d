"""The answers' JSON bodies (handler/responses.py, the KServe v1 wire format, the v1 readiness answers) as
values: the shapes of config/openapi.json."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import torch
from jsonschema import Draft7Validator
from PIL import Image

from handler import responses, wire_formats
from handler.decoding import DecodedImage
from handler.errors import InvalidImage, PayloadTooLarge, TooManyImages
from handler.model_meta import Int8Model, ModelMeta, SelfTest, WeightsInfo
from handler.pipeline import PreparedImage
from handler.request_parsing import ParsedRequest
from handler.request_state import ImageItem, RequestState
from handler.result_cache import CachedResult
from handler.settings import HandlerSettings
from handler.transforms import PreprocessSpec
from scripts import REPO_ROOT
from scripts.service.readiness import ManagementPoller, Responder, Snapshot

CATEGORIES = ("cat", "dog", "fish", "bird")
ROW = torch.tensor([0.1, 0.6, 0.05, 0.25])
MODEL = responses.model_facts("resnet50", "1.0", True)
CONTRACT = json.loads((REPO_ROOT / "config" / "openapi.json").read_text())


def assert_matches_contract(body: dict, schema: str) -> None:
    """``body`` is valid against config/openapi.json's ``components/schemas/<schema>``."""
    Draft7Validator({"$ref": f"#/components/schemas/{schema}", "components": CONTRACT["components"]}).validate(body)


def assert_matches_operation(body: dict, path: str, method: str, status: int) -> None:
    """``body`` is valid against what config/openapi.json documents for ``method path`` answering ``status``
    (a status it does not document fails with KeyError)."""
    response = CONTRACT["paths"][path][method]["responses"][str(status)]
    while "$ref" in response:  # a shared one: #/components/responses/<name>
        response = CONTRACT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    Draft7Validator({**schema, "components": CONTRACT["components"]}).validate(body)


def decoded_item(position: int = 0, width: int = 40, height: int = 30, fmt: str = "PNG") -> ImageItem:
    decoded = DecodedImage(Image.new("RGB", (width, height)), width, height, fmt)
    return ImageItem(position=position, image_bytes=b"x", prepared=PreparedImage(torch.zeros(3, 2, 2), decoded))


def test_predictions_are_the_top_k_most_probable_first():
    top = responses.predictions(ROW, 3, CATEGORIES)
    assert top == [
        {"rank": 1, "class_id": 1, "label": "dog", "probability": 0.6},
        {"rank": 2, "class_id": 3, "label": "bird", "probability": 0.25},
        {"rank": 3, "class_id": 0, "label": "cat", "probability": 0.1},
    ]


def test_predictions_round_to_six_places_and_stop_at_the_class_count():
    top = responses.predictions(torch.tensor([0.123456789, 0.876543211]), 5, ("a", "b"))
    assert [p["probability"] for p in top] == [0.876543, 0.123457]
    assert [p["rank"] for p in top] == [1, 2]


def test_image_facts_come_from_the_decoded_image_or_the_cache():
    assert responses.image_facts(decoded_item(width=64, height=48, fmt="JPEG")) == \
        {"width": 64, "height": 48, "format": "JPEG"}
    cached = ImageItem(position=0, image_bytes=b"x", cached=CachedResult(ROW, 10, 20, "WEBP"))
    assert responses.image_facts(cached) == {"width": 10, "height": 20, "format": "WEBP"}


def test_prediction_body_has_the_contracts_fields_and_cached_only_when_cached():
    top = responses.predictions(ROW, 2, CATEGORIES)
    body = responses.prediction_body("r1", MODEL, top, {"width": 1, "height": 2, "format": "PNG"},
                                     {"preprocess": 1.5}, "2026-01-01T00:00:00.000Z", cached=False)
    assert list(body) == ["request_id", "model", "predictions", "image", "timing_ms", "created_at"]
    assert_matches_contract(body, "PredictionResponse")
    assert body["model"] == {"name": "resnet50", "version": "1.0", "pretrained": True}
    assert body["predictions"] == top
    again = responses.prediction_body("r1", MODEL, top, body["image"], {}, "2026-01-01T00:00:00.000Z", cached=True)
    assert again["cached"] is True
    assert_matches_contract(again, "PredictionResponse")


def test_multi_prediction_body_counts_failed_images_in_its_summary():
    top = responses.predictions(ROW, 1, CATEGORIES)
    results = [
        responses.image_result(0, top, {"width": 1, "height": 1, "format": "PNG"}, cached=True),
        responses.failed_image_result(1, InvalidImage("bad bytes")),
        responses.failed_image_result(2, PayloadTooLarge()),
        responses.image_result(3, top, {"width": 1, "height": 1, "format": "PNG"}, cached=False),
    ]
    body = responses.multi_prediction_body("r2", MODEL, results, {"inference": 3.0}, "2026-01-01T00:00:00.000Z")
    assert_matches_contract(body, "MultiPredictionResponse")
    assert body["summary"] == {"images": 4, "succeeded": 2, "failed": 2}
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert results[0]["cached"] is True and "cached" not in results[3]
    assert results[1] == {"index": 1, "status": 400, "error": {"code": "invalid_image", "message": "bad bytes"}}
    assert results[2]["status"] == 413 and results[2]["error"]["code"] == "payload_too_large"


def test_error_body_is_the_contracts_error():
    body = responses.error_body(InvalidImage("The image could not be decoded."), "rid-9")
    assert body == {"error": {"code": "invalid_image", "message": "The image could not be decoded.",
                              "request_id": "rid-9"}}
    assert_matches_contract(body, "Error")


def test_health_body():
    body = responses.health_body("m", "2.0", False, 1234, "h1")
    assert body == {"status": "healthy", "model": {"name": "m", "version": "2.0"}, "pretrained": False,
                    "worker_pid": 1234, "request_id": "h1"}
    assert_matches_contract(body, "Health")


@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=timezone.utc), "2026-03-04T05:06:07.891Z"),
    (datetime(2026, 3, 4, 7, 6, 7, 0, tzinfo=timezone(timedelta(hours=2))), "2026-03-04T05:06:07.000Z"),
])
def test_created_at_is_utc_with_milliseconds(moment, expected):
    assert responses.utc_timestamp(moment) == expected


def meta(classes: int, int8: Int8Model | None = None) -> ModelMeta:
    return ModelMeta(
        architecture="resnet50", categories=tuple(f"c{i}" for i in range(classes)),
        preprocessing=PreprocessSpec(232, 224, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)),
        weights=WeightsInfo("weights.pt", "user:w.pth", "ab" * 32, True), selftest=SelfTest(0, (1,), (0.0,)),
        int8=int8)


def test_describe_body_shows_a_custom_models_labels_and_truncates_imagenets():
    runtime = {"backend": "eager", "threads_per_worker": 2}
    cache = {"capacity": 0, "entries": 0, "hits": 0, "misses": 0}
    small = responses.describe_body(meta(4), runtime, HandlerSettings(), 4, cache, {"passed": True}, None)
    assert small["classes"] == {"count": 4, "label_source": "imagenet-1k (torchvision)",
                                "labels": ["c0", "c1", "c2", "c3"], "labels_truncated": False}
    assert small["limits"]["top_k"] == {"min": 1, "max": 4, "default": 4}
    assert small["runtime"] is runtime and small["result_cache"] is cache and small["int8_model"] is None
    assert small["weights"]["source"] == "user:w.pth" and small["preprocessing"]["crop_size"] == 224
    large = responses.describe_body(meta(1000, Int8Model("int8.xml", "cd" * 32, (0.0,))), runtime,
                                    HandlerSettings(), 5, cache, {}, None)
    assert len(large["classes"]["labels"]) == responses.LABELS_SHOWN and large["classes"]["labels_truncated"]
    assert large["int8_model"] == {"file": "int8.xml", "sha256": "cd" * 32}


def test_kserve_v1_answer_is_one_result_per_instance_in_the_contracts_shape():
    fresh = decoded_item(position=0)
    fresh.probabilities = ROW
    bad = ImageItem(position=1, error=InvalidImage("The instance 1 is not valid base64."))
    cached = ImageItem(position=2, image_bytes=b"x", cached=CachedResult(ROW, 10, 20, "WEBP"), probabilities=ROW)
    parsed = ParsedRequest(images=(b"x", bad.error, b"x"), top_k=2, source="kserve", multi=True)
    state = RequestState(index=0, request_id="v1-1", started=0.0, parsed=parsed, items=[fresh, bad, cached])
    facts = wire_formats.ModelFacts("resnet50", "1.0", True, CATEGORIES)
    body = json.loads(wire_formats.KSERVE_V1.answer(state, facts, time.perf_counter()).payload)
    assert_matches_contract(body, "V1PredictResponse")
    assert_matches_operation(body, "/v1/models/{model_name}:predict", "post", 200)
    assert [(r["index"], r["status"]) for r in body["predictions"]] == [(0, 200), (1, 400), (2, 200)]
    assert body["predictions"][0]["predictions"] == responses.predictions(ROW, 2, CATEGORIES)
    assert body["predictions"][2]["cached"] is True and body["predictions"][1]["error"]["code"] == "invalid_image"


def test_kserve_v1_request_error_is_the_contracts_error():
    body = json.loads(wire_formats.KSERVE_V1.error_payload(TooManyImages("At most 16 images."), "rid-v1"))
    assert body == {"error": "At most 16 images.", "code": "too_many_images", "request_id": "rid-v1"}
    assert_matches_operation(body, "/v1/models/{model_name}:predict", "post", TooManyImages.status)


def readiness_with(snapshot: Snapshot, tmp_path) -> Responder:
    poller = ManagementPoller("resnet50", tmp_path, lambda: 0, lambda: "key")
    poller.snapshot = snapshot
    return Responder(poller)


def worker_describe(status: str) -> dict:
    return {"modelName": "resnet50", "modelVersion": "1.0", "workers": [{"id": "9000", "status": status, "pid": 1}]}


# scripts/service/readiness.py answers GET /v1/models and GET /v1/models/NAME itself: every state it can be in.
READINESS_STATES = {
    "ready": dict(frontend_up=True, registered=True, default=worker_describe("READY")),
    "starting": dict(frontend_up=False, error="starting"),
    "frontend_unreachable": dict(frontend_up=False, error="frontend_unreachable: refused"),
    "model_not_registered": dict(frontend_up=True),
    "no_ready_worker": dict(frontend_up=True, registered=True, default=worker_describe("UNLOADING")),
}


@pytest.mark.parametrize("state", sorted(READINESS_STATES))
@pytest.mark.parametrize("path, operation, status_when_ready", [
    ("/v1/models", "/v1/models", 200),
    ("/v1/models/resnet50", "/v1/models/{model_name}", 200),
    ("/v1/models/other", "/v1/models/{model_name}", 404),
])
def test_kserve_v1_readiness_answers_are_the_contracts(tmp_path, state, path, operation, status_when_ready):
    snapshot = Snapshot(taken=time.monotonic(), **READINESS_STATES[state])
    answer = readiness_with(snapshot, tmp_path).answer(path, "rid-r")
    # Only the model's readiness follows the snapshot: the list and an unknown name answer alike in every state.
    follows_readiness = operation == "/v1/models/{model_name}" and status_when_ready == 200
    assert answer.status == (503 if follows_readiness and state != "ready" else status_when_ready)
    assert_matches_operation(answer.body, operation, "get", answer.status)
    if answer.status == 503:
        assert answer.body["reason"] == state and answer.headers["Retry-After"]
