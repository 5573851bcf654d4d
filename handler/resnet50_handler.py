"""TorchServe entry point: the one class TorchServe's loader finds in this module.

The class keeps the worker's lifecycle (initialize: load, prove and warm the model) and the
stages: handle() runs preprocess -> inference -> postprocess over a TorchServe batch, the
template method of TorchServe's own handlers, but every request keeps its own outcome: a bad
image fails its request alone (a raised exception would fail the whole batch with 503), and
``_respond_error`` is the single place where typed errors become HTTP statuses.

What it delegates: reading requests and writing answers to their wire format
(handler/wire_formats.py), the JSON bodies to handler/responses.py, logs and metrics to
handler/observability.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from handler.backends import create_backend
from handler.decoding import DecodeLimits
from handler.errors import InternalError, ServiceError
from handler.golden import evaluate as evaluate_golden_set
from handler.model_cache import cache_for_weights
from handler.model_meta import load_model_meta, mismatched_files
from handler.observability import (
    HandlerMetrics,
    LogThresholds,
    configure_logging,
    log_request_failed,
    ms_since,
    record_requests,
)
from handler.pipeline import ClassificationPipeline
from handler.request_parsing import is_health_probe, normalise_headers, request_id_from
from handler.request_state import ImageItem, RequestState
from handler.responses import describe_body, health_body
from handler.result_cache import CachedResult, ResultCache, content_key
from handler.runtime_env import (
    configure_torch_threads,
    release_freed_memory,
    select_device,
    threads_per_worker,
)
from handler.selftest import SelfTestFailed
from handler.settings import HandlerSettings
from handler.settings_table import SettingsError
from handler.wire_formats import (
    JSON_CONTENT_TYPE,
    ModelFacts,
    RequestLimits,
    wire_format_for,
)

REDUCED_PRECISION_TOLERANCE = {"bf16": 0.05, "fp16": 0.05}  # int8 is held to its own build-time logits
INT8_OWN_LOGITS_TOLERANCE = 0.02


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
    def handle(self, data: list[dict], context: Any) -> list[str | bytes]:
        """TorchServe's entry: one answer per request of the batch, in each request's wire format."""
        self.context = context
        return self._run(data)

    def _run(self, data: list[dict]) -> list:
        states = self.preprocess(data)
        self.inference(states)
        answers = self.postprocess(states)
        record_requests(self.metrics, states)
        return answers

    # ----------------------------------------------------------------- stages
    def preprocess(self, data: list[dict]) -> list[RequestState]:
        """Parse (each request by its wire format's parser), decode, validate and transform;
        failures stay per request (and, in the multi-image forms, per image)."""
        limits = RequestLimits(self.default_top_k, self.pipeline.meta.num_classes,
                               self.settings.max_images_per_request)
        states = []
        for index, request in enumerate(data):
            started = time.perf_counter()
            headers = normalise_headers(self._headers(index))
            state = RequestState(index=index, request_id=request_id_from(headers, self._ts_request_id(index)),
                                 started=started, wire=wire_format_for(headers))
            states.append(state)
            if state.wire.answers_probes and headers.get("describe") == "True":
                state.kind = "describe"
                continue
            if state.wire.answers_probes and is_health_probe(headers):
                state.kind = "health"
                continue
            try:
                state.parsed, state.wire_request = state.wire.parse(request or {}, headers, limits)
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
            if state.kind != "predict":
                continue
            if state.parsed is not None and not state.multi and state.items[0].error is not None:
                state.error = state.items[0].error  # a single image's error is the request's
            if state.error is None:
                state.error = state.wire.request_error(state.items)
            state.timing_ms["preprocess"] = ms_since(state.started)
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
        elapsed = ms_since(started)
        for (state, item), row in zip(ready, probabilities):
            item.probabilities = row
            state.timing_ms["inference"] = elapsed
            if item.cache_key is not None:
                decoded = item.prepared.decoded
                self.cache.put(item.cache_key, CachedResult(row, decoded.width, decoded.height, decoded.format))
        return states

    def postprocess(self, states: list[RequestState]) -> list:
        """Each request's answer, written by its wire format; statuses, content types and headers
        set on the context."""
        model = ModelFacts(self.model_name, self.model_version, self.pipeline.meta.weights.pretrained,
                           self.pipeline.meta.categories)
        answers = []
        for state in states:
            started = time.perf_counter()
            if state.kind == "describe":
                answers.append(json.dumps(self.describe_handle()))
                continue
            if state.kind == "health":
                self.context.set_response_content_type(state.index, JSON_CONTENT_TYPE)
                answers.append(json.dumps(health_body(self.model_name, self.model_version, model.pretrained,
                                                      os.getpid(), state.request_id)))
                continue
            if state.wire.content_type is not None:
                self.context.set_response_content_type(state.index, state.wire.content_type)
            answer = None
            if state.error is None:
                _take_cached_probabilities(state)
                try:
                    answer = state.wire.answer(state, model, started)
                except Exception:  # noqa: BLE001 - a formatter's bug fails its own request alone
                    self.log.error("postprocessing failed", exc_info=True, extra={"request_id": state.request_id})
                    state.error = InternalError()
            if state.error is not None:
                answers.append(self._respond_error(state))
                continue
            if answer.content_type is not None:
                self.context.set_response_content_type(state.index, answer.content_type)
            for key, value in answer.headers.items():
                self.context.set_response_header(state.index, key, value)
            answers.append(answer.payload)
            state.wire.log_success(self.log, state, answer, self._log_thresholds())
        return answers

    def describe_handle(self) -> dict:
        """The handler's part of /info (TorchServe's ``customizedMetadata``)."""
        runtime = {**self.pipeline.backend.describe(), "threads_per_worker": self.threads,
                   "workers_configured": self.settings.workers}
        cache = {"capacity": self.cache.capacity, "entries": len(self.cache),
                 "hits": self.cache.hits, "misses": self.cache.misses}
        return describe_body(self.pipeline.meta, runtime, self.settings, self.default_top_k, cache,
                             self.selftest, self.golden_set)

    # ---------------------------------------------------------------- helpers
    def _respond_error(self, state: RequestState) -> Any:
        """The single place where a typed error becomes an HTTP status (its body is the format's)."""
        error = state.error
        self.context.set_response_status(error.status, error.code, state.index)
        self.context.set_response_header(state.index, "X-Error-Code", error.code)
        log_request_failed(self.log, state)
        return state.wire.error_payload(error, state.request_id)

    def _log_thresholds(self) -> LogThresholds:
        return LogThresholds(self.settings.slow_request_ms, self.settings.max_file_size,
                             self.settings.max_image_pixels)

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


def _take_cached_probabilities(state: RequestState) -> None:
    """Images answered from the result cache skipped the forward pass: their rows come from it."""
    for item in state.items:
        if item.cached is not None:
            item.probabilities = item.cached.probabilities
            state.timing_ms.setdefault("inference", 0.0)
