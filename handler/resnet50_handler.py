"""TorchServe entry point: the one class TorchServe's loader finds in this module.

handle() runs preprocess -> inference -> postprocess over a TorchServe batch, the template
method of TorchServe's own handlers, but every request keeps its own outcome: a bad image
fails its request alone (a raised exception would fail the whole batch with 503), and
``_respond_error`` is the single place where typed errors become HTTP statuses.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from handler.backends import create_backend
from handler.model_cache import cache_for_weights
from handler.calibration import calibration_batches
from handler.decoding import DecodeLimits
from handler.errors import InternalError, ServiceError, error_body
from handler.jsonlog import configure_logging
from handler.metrics import HandlerMetrics
from handler.golden import evaluate as evaluate_golden_set
from handler.model_meta import load_model_meta, mismatched_files
from handler.pipeline import ClassificationPipeline
from handler.request_parsing import (
    is_health_probe,
    normalise_headers,
    parse_kserve_instances,
    parse_request,
    request_id_from,
)
from handler.request_state import ImageItem, RequestState
from handler.result_cache import CachedResult, ResultCache, content_key
from handler.runtime_env import (
    configure_torch_threads,
    release_freed_memory,
    select_device,
    threads_per_worker,
)
from handler.selftest import SelfTestFailed
from handler import wire_v2
from handler.settings import HandlerSettings
from handler.settings_table import SettingsError

JSON_CONTENT_TYPE = "application/json"
NEAR_LIMIT_FRACTION = 0.8
REDUCED_PRECISION_TOLERANCE = {"bf16": 0.05, "fp16": 0.05, "int8": 0.15}
INT8_OWN_LOGITS_TOLERANCE = 0.02
LABELS_SHOWN = 100


class ResNet50Handler:
    """ResNet-50 ImageNet classifier: the request forms of config/openapi.json in, its JSON out."""

    def __init__(self) -> None:
        self.initialized = False
        self.context: Any = None
        self.settings = HandlerSettings()
        self.log = logging.getLogger("resnet50")
        self.pipeline: ClassificationPipeline | None = None
        self.model_name = "resnet50"
        self.model_version = "1.0"
        self.threads = 1
        self.selftest: dict = {}
        self.golden_set: dict | None = None
        self.cache = ResultCache(0)
        self.metrics = HandlerMetrics(None, "resnet50")
        self._pool: ThreadPoolExecutor | None = None

    # ---------------------------------------------------------------- lifecycle
    def initialize(self, context: Any) -> None:
        """Load metadata and weights from the archive, size the threads, prove the model."""
        self.context = context
        try:
            self.settings = HandlerSettings.from_env()
        except SettingsError:
            # A bad value must still be said the way every failed start is (model_load_failed).
            self.log = configure_logging("INFO", "json")
            self.log.critical("model failed to load; this worker will not serve", exc_info=True,
                              extra={"event": "model_load_failed"})
            raise
        self.log = configure_logging(self.settings.log_level, self.settings.log_format)
        properties = context.system_properties
        model_dir = Path(properties.get("model_dir", "."))
        manifest_model = (getattr(context, "manifest", None) or {}).get("model", {})
        self.model_name = manifest_model.get("modelName", getattr(context, "model_name", "resnet50"))
        self.model_version = str(manifest_model.get("modelVersion", "1.0"))
        try:
            meta = load_model_meta(model_dir)
            changed = mismatched_files(model_dir, meta)
            if changed:
                raise SelfTestFailed(f"{' and '.join(changed)}: not the bytes the archive recorded "
                                     "(sha256 differs); the weights do not match the archive")
            self.threads = threads_per_worker(self.settings.workers, self.settings.threads_per_worker)
            configure_torch_threads(self.threads)
            device = select_device(self.settings.device, properties.get("gpu_id"))
            backend = create_backend(
                self.settings.backend, model_dir / meta.weights.file, meta.architecture,
                meta.num_classes, device, self.settings.precision,
                calibration=lambda: calibration_batches(meta.preprocessing, self.settings.int8_calibration_dir),
                input_size=meta.preprocessing.crop_size,
                converted_cache=lambda runtime, version: cache_for_weights(
                    self.settings.model_cache_dir, meta.weights.sha256, meta.preprocessing.crop_size,
                    runtime, version),
                int8_model=model_dir / meta.int8.file if meta.int8 else None,
            )
            limits = DecodeLimits(
                max_bytes=self.settings.max_file_size,
                max_pixels=self.settings.max_image_pixels,
                max_aspect_ratio=self.settings.max_aspect_ratio,
                # Twice the resize target keeps the reference's antialiased downscale close.
                jpeg_draft_min_side=2 * meta.preprocessing.resize_size if self.settings.fast_jpeg_decode else 0,
            )
            self.pipeline = ClassificationPipeline(meta, backend, limits)
            self.cache = ResultCache(self.settings.result_cache_size)
            self.metrics = HandlerMetrics(context, self.model_name)
            self._prove_model()
            self._check_golden_set(model_dir)
            backend.warm_up([1, int(properties.get("batch_size") or 1)])
            release_freed_memory()
        except Exception:
            self.log.critical("model failed to load; this worker will not serve", exc_info=True,
                              extra={"event": "model_load_failed", "model_dir": str(model_dir)})
            raise
        if not meta.weights.pretrained:
            self.log.warning(
                "SERVING RANDOMLY INITIALISED WEIGHTS: predictions are meaningless. "
                "Rebuild the archive online or with MODEL_WEIGHTS=<file> for real ImageNet weights.",
                extra={"event": "random_weights", "weights_source": meta.weights.source},
            )
        self.log.info("model ready", extra={
            "event": "model_ready", "pid": os.getpid(), "backend": backend.describe(),
            "threads": self.threads, "selftest": self.selftest, "golden_set": self.golden_set,
        })
        self.initialized = True

    def _prove_model(self) -> None:
        assert self.pipeline is not None
        tolerance = self.settings.selftest_tolerance
        # Reduced precision moves the logits (measured relative L2 error on the self-test
        # input: bf16 ~1e-2, int8 ~5e-2); still far below what wrong weights do.
        meta = self.pipeline.meta
        expected = None
        if self._serves_archive_int8():
            # The int8 model quantised at build: checked against its own build-time logits, far
            # tighter than against fp32's (another CPU's int8 kernels may round differently).
            expected, tolerance = meta.int8.selftest_logits, max(tolerance, INT8_OWN_LOGITS_TOLERANCE)
        else:
            tolerance = max(tolerance, REDUCED_PRECISION_TOLERANCE.get(self.settings.precision, 0.0))
        result = self.pipeline.run_selftest(tolerance, expected)
        self.selftest = result.to_dict()
        fp32 = self.settings.precision == "fp32"
        if result.relative_error > tolerance or (fp32 and not result.top5_match):
            raise SelfTestFailed(
                f"self-test failed: relative error {result.relative_error:.3g} > {tolerance:g} "
                f"or top-5 mismatch ({result.top5_match=}); the weights do not match the archive"
            )

    def _check_golden_set(self, model_dir: Path) -> None:
        """The archived labelled images, classified by this worker's own backend and precision:
        below the build-time accuracy minus its tolerance, the worker never serves."""
        golden = self.pipeline.meta.golden
        if golden is None:
            return
        int8 = self.pipeline.meta.int8
        if self._serves_archive_int8() and int8.details.get("golden_accuracy") is not None:
            # The int8 model is held to its own build-time accuracy (build_mar printed both).
            golden = dataclasses.replace(golden, recorded_accuracy=float(int8.details["golden_accuracy"]))
        result = evaluate_golden_set(golden, model_dir, lambda data: self.pipeline.prepare(data).tensor,
                                     self.pipeline.backend)
        self.golden_set = result.to_dict()
        if not result.passed:
            raise SelfTestFailed(
                f"golden set accuracy {result.accuracy:.3f} ({result.correct}/{result.images}) is below the "
                f"build-time {result.recorded_accuracy:.3f} minus the tolerance {result.tolerance:g}; "
                "this worker will not serve")

    def _serves_archive_int8(self) -> bool:
        """The backend runs the int8 model quantised at archive build (not an fp32 conversion)."""
        return (self.pipeline.meta.int8 is not None
                and self.pipeline.backend.describe().get("converted_from") == "archive")

    @property
    def default_top_k(self) -> int:
        """DEFAULT_TOP_K, but never more than the model has classes (a 4-class model answers 4)."""
        return min(self.settings.default_top_k, self.pipeline.meta.num_classes)

    # ------------------------------------------------------------------- entry
    def handle(self, data: list[dict], context: Any) -> list[str] | list[dict]:
        """TorchServe's entry: one response string per request of the batch."""
        self.context = context
        if self.settings.request_envelope == "kserve":
            return self.handle_kserve_instances(data)
        states = self.preprocess(data)
        self.inference(states)
        responses = self.postprocess(states)
        self._record_metrics(states)
        return responses

    def handle_kserve_instances(self, instances: Any) -> list[dict]:
        """Under KServe (v1), TorchServe's ``kserve`` envelope passes the ``instances`` of one
        request and wraps what this returns as ``{"predictions": [...]}``: one result per
        instance, in order, inferred as one batch, errors inline (as the multi-image forms)."""
        started = time.perf_counter()
        headers = normalise_headers(self._headers(0))
        state = RequestState(index=0, request_id=request_id_from(headers, self._ts_request_id(0)), started=started)
        try:
            state.parsed = parse_kserve_instances(instances, self.default_top_k,
                                                  self.pipeline.meta.num_classes, self.settings.max_images_per_request)
        except ServiceError as error:
            state.error = error
        if state.error is None:
            state.items = [self._new_item(position, image) for position, image in enumerate(state.parsed.images)]
            self._decode_all([(state, item) for item in state.items if item.error is None and item.cached is None])
            state.timing_ms["preprocess"] = _ms_since(started)
            self.inference([state])  # sets state.error if the forward pass fails
        if state.error is not None:
            response = [json.loads(self._respond_error(state))]
        else:
            body = self._multi_prediction_body(state, time.perf_counter())
            self._log_success(state, body)
            response = body["results"]
        self._record_metrics([state])
        return response

    # ----------------------------------------------------------------- stages
    def preprocess(self, data: list[dict]) -> list[RequestState]:
        """Parse, decode, validate and transform each request; failures stay per request
        (and, in the multi-image forms, per image)."""
        states = []
        for index, request in enumerate(data):
            started = time.perf_counter()
            headers = normalise_headers(self._headers(index))
            state = RequestState(index=index, request_id=request_id_from(headers, self._ts_request_id(index)),
                                 started=started)
            states.append(state)
            if headers.get("describe") == "True":
                state.kind = "describe"
                continue
            if is_health_probe(headers):
                state.kind = "health"
                continue
            try:
                if wire_v2.is_v2(headers):  # POST /v2/models/NAME/infer (nginx sets X-Wire-Format: v2)
                    state.wire = "v2"
                    state.wire_request = wire_v2.parse_infer_request(
                        request or {}, headers, self.pipeline.meta.num_classes, self.settings.max_images_per_request)
                    state.parsed = state.wire_request.parsed
                else:
                    state.parsed = parse_request(request or {}, headers, self.default_top_k,
                                                 self.pipeline.meta.num_classes, self.settings.max_images_per_request)
            except ServiceError as error:
                state.error = error
            except Exception:  # noqa: BLE001 - a bug must not fail the rest of the batch
                self.log.error("unexpected request parsing failure", exc_info=True,
                               extra={"request_id": state.request_id})
                state.error = InternalError()
            if state.parsed is not None:
                state.items = [self._new_item(position, image) for position, image in enumerate(state.parsed.images)]
        self._decode_all([(state, item) for state in states for item in state.items
                          if item.error is None and item.cached is None])
        for state in states:
            if state.parsed is not None and not state.multi and state.items[0].error is not None:
                state.error = state.items[0].error  # a single image's error is the request's
            if state.wire == "v2" and state.error is None:
                state.error = wire_v2.first_image_error(state.items)  # one tensor: one bad image fails it
            if state.kind == "predict":
                state.timing_ms["preprocess"] = _ms_since(state.started)
        return states

    def _new_item(self, position: int, image: bytes | ServiceError) -> ImageItem:
        """An image of a request, answered from the result cache when it holds these bytes."""
        if isinstance(image, ServiceError):
            return ImageItem(position=position, error=image)
        item = ImageItem(position=position, image_bytes=image)
        if self.cache.enabled:  # looked up here, in one thread: the LRU is not thread-safe
            item.cache_key = content_key(image)
            item.cached = self.cache.get(item.cache_key)
        return item

    def _decode_all(self, pending: list[tuple[RequestState, ImageItem]]) -> None:
        """Decode and transform every image of the batch. PIL and torch release the GIL, so
        with several images they run on the worker's threads in parallel (measured here, four
        640x480 JPEGs on 2 threads: 16 ms against 24 ms one after another); one image stays
        on this thread, where a pool would only add its hand-over cost."""
        if len(pending) > 1 and self.threads > 1:
            list(self._decode_pool().map(self._prepare_item, pending))
        else:
            for entry in pending:
                self._prepare_item(entry)

    def _decode_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="decode")
        return self._pool

    def _prepare_item(self, entry: tuple[RequestState, ImageItem]) -> None:
        state, item = entry
        try:
            item.prepared = self.pipeline.prepare(item.image_bytes)
        except ServiceError as error:
            item.error = error
        except Exception:  # noqa: BLE001 - a bug must not fail the other images or requests
            self.log.error("unexpected preprocessing failure", exc_info=True,
                           extra={"request_id": state.request_id, "image_index": item.position})
            item.error = InternalError()

    def inference(self, states: list[RequestState]) -> list[RequestState]:
        """One batched forward pass over every image that survived preprocessing, across the
        requests of the TorchServe batch and the images of each multi-image request."""
        ready = [(state, item) for state in states if state.error is None
                 for item in state.items if item.needs_inference]
        if not ready:
            return states
        started = time.perf_counter()
        try:
            probabilities = self.pipeline.probabilities([item.prepared.tensor for _, item in ready])
        except Exception:  # noqa: BLE001 - answer every request with a sanitized 500
            self.log.error("inference failed", exc_info=True,
                           extra={"request_ids": sorted({state.request_id for state, _ in ready})})
            for state, _ in ready:
                state.error = InternalError()
            return states
        elapsed = _ms_since(started)
        for (state, item), row in zip(ready, probabilities):
            item.probabilities = row
            state.timing_ms["inference"] = elapsed
            if item.cache_key is not None:
                decoded = item.prepared.decoded
                self.cache.put(item.cache_key, CachedResult(row, decoded.width, decoded.height, decoded.format))
        return states

    def postprocess(self, states: list[RequestState]) -> list[str]:
        """Top-k and the JSON body per request; statuses and content types set on the context."""
        responses = []
        for state in states:
            started = time.perf_counter()
            if state.kind == "describe":
                responses.append(json.dumps(self.describe_handle()))
                continue
            self.context.set_response_content_type(state.index, JSON_CONTENT_TYPE)
            if state.kind == "health":
                responses.append(json.dumps(self._health_body(state.request_id)))
                continue
            if state.error is not None:
                responses.append(self._respond_error(state))
                continue
            if state.wire == "v2":
                responses.append(self._v2_response(state, started))
                continue
            try:
                body = self._multi_prediction_body(state, started) if state.multi \
                    else self._prediction_body(state, started)
            except Exception:  # noqa: BLE001
                self.log.error("postprocessing failed", exc_info=True, extra={"request_id": state.request_id})
                state.error = InternalError()
                responses.append(self._respond_error(state))
                continue
            responses.append(json.dumps(body))
            self._log_success(state, body)
        return responses

    def describe_handle(self) -> dict:
        """The handler's part of /info (TorchServe's ``customizedMetadata``)."""
        meta = self.pipeline.meta
        return {
            "architecture": meta.architecture,
            "weights": meta.weights.to_dict(),
            "pretrained": meta.weights.pretrained,
            "num_classes": meta.num_classes,
            "classes": {
                "count": meta.num_classes,
                "label_source": meta.labels_source,
                # All of a custom model's labels; ImageNet's 1000 would drown the rest of /info.
                "labels": list(meta.categories[:LABELS_SHOWN]),
                "labels_truncated": meta.num_classes > LABELS_SHOWN,
            },
            "preprocessing": meta.preprocessing.to_dict(),
            "preprocessing_source": meta.preprocessing_source,  # the reference, or build-time overrides
            # The archive's int8 model (quantised at build); "runtime" says whether it serves.
            "int8_model": meta.int8.to_dict() if meta.int8 else None,
            "runtime": {
                **self.pipeline.backend.describe(),
                "threads_per_worker": self.threads,
                "workers_configured": self.settings.workers,
            },
            "limits": {
                "max_file_size": self.settings.max_file_size,
                "max_image_pixels": self.settings.max_image_pixels,
                "max_aspect_ratio": self.settings.max_aspect_ratio,
                "top_k": {"min": 1, "max": meta.num_classes, "default": self.default_top_k},
            },
            "fast_jpeg_decode": self.settings.fast_jpeg_decode,
            "result_cache": {"capacity": self.cache.capacity, "entries": len(self.cache),
                             "hits": self.cache.hits, "misses": self.cache.misses},
            "selftest": self.selftest,
            "golden_set": self.golden_set,
        }

    # ---------------------------------------------------------------- helpers
    def _record_metrics(self, states: list[RequestState]) -> None:
        predictions = [s for s in states if s.kind == "predict"]
        if not predictions:
            return
        # Images in the forward pass: requests of the TorchServe batch times their images.
        inferred = sum(1 for s in predictions for item in s.items
                       if item.prepared is not None and item.probabilities is not None)
        if inferred:
            self.metrics.observe("resnet50_batch_size", inferred)
        for state in predictions:
            status = state.error.status if state.error else 200
            self.metrics.observe("resnet50_requests_total", 1, str(status))
            errors = [state.error] if state.error else [item.error for item in state.items if item.error]
            for error in errors:
                self.metrics.observe("resnet50_errors_total", 1, error.code)
            if state.items:
                self.metrics.observe("resnet50_image_bytes_total", state.image_bytes)
            for stage in ("preprocess", "inference", "postprocess"):
                if stage in state.timing_ms:
                    self.metrics.observe(f"resnet50_{stage}_seconds", state.timing_ms[stage] / 1000.0)

    def _respond_error(self, state: RequestState) -> str:
        """The single place where a typed error becomes an HTTP status and JSON body."""
        error = state.error
        self.context.set_response_status(error.status, error.code, state.index)
        self.context.set_response_header(state.index, "X-Error-Code", error.code)
        self.log.error(error.message, extra={
            "event": "request_failed", "request_id": state.request_id, "status": error.status,
            "code": error.code, "latency_ms": _ms_since(state.started),
            "image_bytes": state.image_bytes if state.items else None,
        })
        if state.wire == "v2":
            return json.dumps(wire_v2.error_body(error, state.request_id))
        return json.dumps(error_body(error, state.request_id))

    def _v2_response(self, state: RequestState, started: float) -> bytes | str:
        """The Open Inference Protocol answer (handler/wire_v2.py) for a request read by its parser."""
        try:
            rows = [self._probabilities_of(state, item) for item in state.items]
            body, content_type, header_length = wire_v2.format_response(
                state.wire_request, rows, self.pipeline.meta.categories, self.model_name, self.model_version)
        except Exception:  # noqa: BLE001
            self.log.error("postprocessing failed", exc_info=True, extra={"request_id": state.request_id})
            state.error = InternalError()
            return self._respond_error(state)
        self.context.set_response_content_type(state.index, content_type)
        if header_length is not None:
            self.context.set_response_header(state.index, "Inference-Header-Content-Length", str(header_length))
        state.timing_ms["postprocess"] = _ms_since(started)
        latency = _ms_since(state.started)
        self.log.log(logging.WARNING if latency > self.settings.slow_request_ms else logging.INFO, "prediction",
                     extra={"event": "prediction", "request_id": state.request_id, "status": 200, "form": "v2",
                            "latency_ms": round(latency, 2), "images": len(state.items),
                            "timing_ms": {k: round(v, 2) for k, v in state.timing_ms.items()},
                            "image_bytes": state.image_bytes, "binary": state.wire_request.output.binary,
                            "classification": state.wire_request.output.classification})
        return body

    def _probabilities_of(self, state: RequestState, item: ImageItem):
        if item.cached is not None:
            state.timing_ms.setdefault("inference", 0.0)
            return item.cached.probabilities
        return item.probabilities

    def _prediction_body(self, state: RequestState, started: float) -> dict:
        item = state.items[0]
        predictions = self._predictions(state, item)
        state.timing_ms["postprocess"] = _ms_since(started)
        body = {
            "request_id": state.request_id,
            "model": self._model_facts(),
            "predictions": predictions,
            "image": _image_facts(item),
            "timing_ms": {k: round(v, 2) for k, v in state.timing_ms.items()},
            "created_at": _utc_now(),
        }
        if item.cached is not None:
            body["cached"] = True  # served from RESULT_CACHE_SIZE's cache: same bytes seen before
        return body

    def _multi_prediction_body(self, state: RequestState, started: float) -> dict:
        """One result per image, in request order; a failed image carries its error inline."""
        results = []
        for item in state.items:
            if item.error is not None:
                results.append({"index": item.position, "status": item.error.status,
                                "error": {"code": item.error.code, "message": item.error.message}})
                continue
            result = {"index": item.position, "status": 200, "predictions": self._predictions(state, item),
                      "image": _image_facts(item)}
            if item.cached is not None:
                result["cached"] = True
            results.append(result)
        state.timing_ms["postprocess"] = _ms_since(started)
        failed = sum(1 for result in results if result["status"] != 200)
        return {
            "request_id": state.request_id,
            "model": self._model_facts(),
            "results": results,
            "summary": {"images": len(results), "succeeded": len(results) - failed, "failed": failed},
            "timing_ms": {k: round(v, 2) for k, v in state.timing_ms.items()},
            "created_at": _utc_now(),
        }

    def _predictions(self, state: RequestState, item: ImageItem) -> list[dict]:
        if item.cached is not None:
            item.probabilities = item.cached.probabilities
            state.timing_ms.setdefault("inference", 0.0)
        return self.pipeline.top_k(item.probabilities, state.parsed.top_k)

    def _model_facts(self) -> dict:
        return {"name": self.model_name, "version": self.model_version,
                "pretrained": self.pipeline.meta.weights.pretrained}

    def _health_body(self, request_id: str) -> dict:
        return {
            "status": "healthy",
            "model": {"name": self.model_name, "version": self.model_version},
            "pretrained": self.pipeline.meta.weights.pretrained,
            "worker_pid": os.getpid(),
            "request_id": request_id,
        }

    def _log_success(self, state: RequestState, body: dict) -> None:
        latency = _ms_since(state.started)
        images = [r["image"] for r in body["results"] if "image" in r] if state.multi else [body["image"]]
        near_limit = (any(len(item.image_bytes) > NEAR_LIMIT_FRACTION * self.settings.max_file_size
                          for item in state.items)
                      or any(image["width"] * image["height"] > NEAR_LIMIT_FRACTION * self.settings.max_image_pixels
                             for image in images))
        slow = latency > self.settings.slow_request_ms
        failed = [item.error.code for item in state.items if item.error is not None]
        level = logging.WARNING if (near_limit or slow or failed) else logging.INFO
        fields = {
            "event": "prediction", "request_id": state.request_id, "status": 200,
            "latency_ms": round(latency, 2), "timing_ms": body["timing_ms"], "image_bytes": state.image_bytes,
            "form": state.parsed.source, "top_k": state.parsed.top_k, "near_limit": near_limit, "slow": slow,
        }
        if state.multi:
            fields.update(images=len(state.items), failed_images=len(failed), image_errors=failed,
                          cached=sum(1 for item in state.items if item.cached is not None))
        else:
            fields.update(image=body["image"], top1=body["predictions"][0]["class_id"],
                          cached=state.items[0].cached is not None)
        self.log.log(level, "prediction", extra=fields)

    def _headers(self, index: int) -> dict:
        try:
            return self.context.get_all_request_header(index) or {}
        except (AttributeError, IndexError, KeyError, TypeError):
            return {}

    def _ts_request_id(self, index: int) -> str:
        try:
            return str(self.context.get_request_id(index))
        except (AttributeError, IndexError, KeyError, TypeError):
            return f"req-{index}"


def _image_facts(item: ImageItem) -> dict:
    source = item.cached if item.cached is not None else item.prepared.decoded
    return {"width": source.width, "height": source.height, "format": source.format}


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
