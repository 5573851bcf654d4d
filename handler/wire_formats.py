"""The service's wire formats: each a parser into the RequestState and a formatter out of it.

Every format goes through the same stages (``ResNet50Handler.preprocess -> inference ->
postprocess``: decode, the result cache, one batched forward pass, per-request errors); a format
only decides how a request is read and how its answer is written:

- ``PREDICT``: /predict's forms (multipart, raw body, JSON; one image or several), read by
  handler/request_parsing.py, answered with handler/responses.py's bodies;
- ``KSERVE_V1``: KServe v1's ``POST /v1/models/NAME:predict`` (nginx marks it with
  ``X-Wire-Format: v1``): the JSON body ``{"instances": [...]}`` read by handler/request_parsing.py,
  answered ``{"predictions": [...]}`` with one multi-image result per instance;
- ``OPEN_INFERENCE_V2``: the Open Inference Protocol (nginx marks its infer route with
  ``X-Wire-Format: v2``), read and answered by handler/wire_v2.py.

To add a format: write its parser and formatter in a module of their own (as wire_v2.py), wrap
them in a ``WireFormat`` below and make ``wire_format_for`` choose it. Nothing here knows
TorchServe's context: the handler sets what an ``Answer`` carries on it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from handler import responses, wire_v2
from handler.errors import ServiceError
from handler.observability import (
    LogThresholds,
    log_prediction,
    log_v2_prediction,
    ms_since,
    rounded_timing,
)
from handler.request_parsing import ParsedRequest, parse_kserve_v1_body, parse_request

if TYPE_CHECKING:
    from handler.request_state import ImageItem, RequestState

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class RequestLimits:
    """What a parser checks a request against."""

    default_top_k: int
    num_classes: int
    max_images: int


@dataclass(frozen=True)
class ModelFacts:
    """What a formatter says about the model that answered."""

    name: str
    version: str
    pretrained: bool
    categories: Sequence[str]


@dataclass
class Answer:
    """A successful request's answer: what TorchServe sends back and what to set on its context."""

    payload: Any  # str or bytes
    content_type: str | None = None  # None: the format's content_type stays
    headers: dict[str, str] = field(default_factory=dict)
    body: dict | None = None  # the JSON body as a dict, for the prediction log line


class WireFormat:
    """One way of speaking to the service; subclasses fill in the parser and the formatter."""

    name = ""
    content_type: str | None = JSON_CONTENT_TYPE  # set on every answer of the format, errors included
    answers_probes = True  # nginx's health probe and TorchServe's describe API come in through it

    def parse(self, request: Mapping[str, Any], headers: Mapping[str, str],
              limits: RequestLimits) -> tuple[ParsedRequest, Any]:
        """One request's images and options, or a typed error raised; the second value is what
        else the formatter needs (kept as RequestState.wire_request)."""
        raise NotImplementedError

    def request_error(self, items: Sequence[ImageItem]) -> ServiceError | None:
        """After decoding: the error the images' own errors make for the whole request, if any."""
        return None

    def answer(self, state: RequestState, model: ModelFacts, started: float) -> Answer:
        """The answer of a request that has no request-level error. ``started`` is when the
        postprocess stage began for it; the formatter records state.timing_ms["postprocess"]
        before writing it into a body."""
        raise NotImplementedError

    def error_payload(self, error: ServiceError, request_id: str) -> Any:
        """What a failed request answers (the handler sets its status and X-Error-Code)."""
        raise NotImplementedError

    def log_success(self, log: logging.Logger, state: RequestState, answer: Answer,
                    thresholds: LogThresholds) -> None:
        log_prediction(log, state, answer.body, thresholds)


class PredictForms(WireFormat):
    """/predict (and the page): multipart, a raw image body or JSON; handler/request_parsing.py."""

    name = "predict"

    def parse(self, request, headers, limits):
        return parse_request(request, headers, limits.default_top_k, limits.num_classes, limits.max_images), None

    def answer(self, state, model, started):
        body = self.body(state, model, started)
        return Answer(json.dumps(body), body=body)

    def error_payload(self, error, request_id):
        return json.dumps(responses.error_body(error, request_id))

    @staticmethod
    def body(state: RequestState, model: ModelFacts, started: float) -> dict:
        """This service's JSON body: one image's Prediction, or a result per image."""
        top = {item.position: responses.predictions(item.probabilities, state.parsed.top_k, model.categories)
               for item in state.items if item.error is None}
        state.timing_ms["postprocess"] = ms_since(started)
        facts = responses.model_facts(model.name, model.version, model.pretrained)
        timing = rounded_timing(state.timing_ms)
        created_at = responses.utc_timestamp(datetime.now(timezone.utc))
        if not state.multi:
            item = state.items[0]
            return responses.prediction_body(state.request_id, facts, top[item.position], responses.image_facts(item),
                                             timing, created_at, item.cached is not None)
        results = [responses.failed_image_result(item.position, item.error) if item.error is not None
                   else responses.image_result(item.position, top[item.position], responses.image_facts(item),
                                               item.cached is not None)
                   for item in state.items]
        return responses.multi_prediction_body(state.request_id, facts, results, timing, created_at)


class KServeV1(PredictForms):
    """KServe's v1 protocol, as KServe's own model server speaks it: ``{"instances": [...]}`` in,
    ``{"predictions": [...]}`` out, one result per instance with its errors inline (the multi-image
    forms' results). Each request of a TorchServe batch is its own (dynamic batching intact);
    a request-level error is KServe's ``{"error": "<message>"}`` plus the stable code and id."""

    name = "kserve-v1"

    def parse(self, request, headers, limits):
        return parse_kserve_v1_body(request, limits.default_top_k, limits.num_classes, limits.max_images), None

    def answer(self, state, model, started):
        body = self.body(state, model, started)
        answer = {"predictions": body["results"]}
        return Answer(json.dumps(answer), body=body)

    def error_payload(self, error, request_id):
        return json.dumps(wire_v2.error_body(error, request_id))


class OpenInferenceV2(WireFormat):
    """The Open Inference Protocol's infer request and answer; handler/wire_v2.py."""

    name = "v2"

    def parse(self, request, headers, limits):
        infer = wire_v2.parse_infer_request(request, headers, limits.num_classes, limits.max_images)
        return infer.parsed, infer

    def request_error(self, items):
        return wire_v2.first_image_error(items)  # one tensor: one bad image fails it

    def answer(self, state, model, started):
        body, content_type, header_length = wire_v2.format_response(
            state.wire_request, [item.probabilities for item in state.items], model.categories,
            model.name, model.version)
        state.timing_ms["postprocess"] = ms_since(started)
        headers = {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
        return Answer(body, content_type, headers)

    def error_payload(self, error, request_id):
        return json.dumps(wire_v2.error_body(error, request_id))

    def log_success(self, log, state, answer, thresholds):
        log_v2_prediction(log, state, thresholds)


PREDICT = PredictForms()
KSERVE_V1 = KServeV1()
OPEN_INFERENCE_V2 = OpenInferenceV2()


KSERVE_V1_HEADER_VALUE = "v1"  # nginx's X-Wire-Format on POST /v1/models/NAME:predict


def wire_format_for(headers: Mapping[str, str]) -> WireFormat:
    """The format of one request, from the header nginx sets on its route (clients cannot: nginx
    overwrites X-Wire-Format on every inference route)."""
    if wire_v2.is_v2(headers):  # POST /v2/models/NAME/infer (nginx sets X-Wire-Format: v2)
        return OPEN_INFERENCE_V2
    if headers.get(wire_v2.WIRE_HEADER, "").strip().lower() == KSERVE_V1_HEADER_VALUE:
        return KSERVE_V1
    return PREDICT
