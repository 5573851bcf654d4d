"""What the handler tells operators: its JSON-lines log and its Prometheus metrics.

Logging: the handler logs through its own ``resnet50`` logger with its own stdout stream, never
through the root logger: TorchServe's worker reads ``[METRICS]`` lines from the root logger's
plain output, and that format must stay untouched. Every request's line carries its request id.

Metrics: emitted through TorchServe's metrics cache and exposed by its metrics API. Each name
is a module-level constant, so a misspelt name fails at import instead of recording nothing;
``METRICS`` declares their type, unit and dimensions, which config/metrics.yaml must repeat
(TorchServe drops undeclared metrics in Prometheus mode; tests/unit/test_observability.py
compares the two). Outside TorchServe (unit tests, in-process benchmarks) the context has no
metrics cache and recording a declared metric does nothing.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handler.request_state import RequestState

# ------------------------------------------------------------------------------------- metrics
REQUESTS_TOTAL = "resnet50_requests_total"
ERRORS_TOTAL = "resnet50_errors_total"
IMAGE_BYTES_TOTAL = "resnet50_image_bytes_total"
PREPROCESS_SECONDS = "resnet50_preprocess_seconds"
INFERENCE_SECONDS = "resnet50_inference_seconds"
POSTPROCESS_SECONDS = "resnet50_postprocess_seconds"
BATCH_SIZE = "resnet50_batch_size"

# The stages' timings (RequestState.timing_ms keys), each with its histogram.
STAGE_SECONDS = {"preprocess": PREPROCESS_SECONDS, "inference": INFERENCE_SECONDS,
                 "postprocess": POSTPROCESS_SECONDS}


@dataclass(frozen=True)
class MetricSpec:
    kind: str  # TorchServe's MetricTypes value, config/metrics.yaml's section: "counter" | "histogram"
    unit: str
    dimensions: tuple[str, ...]  # ModelName first; the labels observe() takes follow it


METRICS: dict[str, MetricSpec] = {
    REQUESTS_TOTAL: MetricSpec("counter", "Count", ("ModelName", "status")),
    ERRORS_TOTAL: MetricSpec("counter", "Count", ("ModelName", "code")),
    IMAGE_BYTES_TOTAL: MetricSpec("counter", "Bytes", ("ModelName",)),
    # Durations in seconds: Prometheus' default histogram buckets (5 ms .. 10 s) are made for them.
    PREPROCESS_SECONDS: MetricSpec("histogram", "Seconds", ("ModelName",)),
    INFERENCE_SECONDS: MetricSpec("histogram", "Seconds", ("ModelName",)),
    POSTPROCESS_SECONDS: MetricSpec("histogram", "Seconds", ("ModelName",)),
    BATCH_SIZE: MetricSpec("histogram", "Count", ("ModelName",)),
}

_metrics_log = logging.getLogger("resnet50.metrics")


class UnknownMetric(KeyError):
    """A metric name that METRICS does not declare: a bug, never silently dropped."""


class HandlerMetrics:
    """The handler's metrics in one TorchServe worker (a no-op without TorchServe's cache)."""

    def __init__(self, context: Any, model_name: str) -> None:
        self.model_name = model_name
        self._metrics: dict[str, Any] = {}
        cache = getattr(context, "metrics", None)
        if cache is None or not hasattr(cache, "add_metric_to_cache"):
            return
        try:
            from ts.metrics.metric_type_enum import MetricTypes
        except ImportError:  # not inside TorchServe
            return
        for name, spec in METRICS.items():
            self._metrics[name] = cache.add_metric_to_cache(name, spec.unit, list(spec.dimensions),
                                                            MetricTypes(spec.kind))

    def observe(self, name: str, value: float, *labels: str) -> None:
        """Record ``value`` under ``labels`` (the dimensions after ModelName); raises UnknownMetric
        for a name METRICS does not declare, with or without TorchServe."""
        if name not in METRICS:
            raise UnknownMetric(f"metric {name!r} is not declared in handler/observability.py METRICS")
        metric = self._metrics.get(name)
        if metric is None:
            return
        try:
            metric.add_or_update(value, [self.model_name, *labels])
        except Exception:  # noqa: BLE001 - metrics must never fail a request
            _metrics_log.warning("could not record metric %s", name, exc_info=True)


def record_requests(metrics: HandlerMetrics, states: list[RequestState]) -> None:
    """The metrics of one TorchServe batch: every prediction request's status, errors, bytes and
    stage timings, and the images that went through the forward pass."""
    predictions = [s for s in states if s.kind == "predict"]
    if not predictions:
        return
    # Images in the forward pass: requests of the TorchServe batch times their images.
    inferred = sum(1 for s in predictions for item in s.items
                   if item.prepared is not None and item.probabilities is not None)
    if inferred:
        metrics.observe(BATCH_SIZE, inferred)
    for state in predictions:
        status = state.error.status if state.error else 200
        metrics.observe(REQUESTS_TOTAL, 1, str(status))
        errors = [state.error] if state.error else [item.error for item in state.items if item.error]
        for error in errors:
            metrics.observe(ERRORS_TOTAL, 1, error.code)
        if state.items:
            metrics.observe(IMAGE_BYTES_TOTAL, state.image_bytes)
        for stage, metric in STAGE_SECONDS.items():
            if stage in state.timing_ms:
                metrics.observe(metric, state.timing_ms[stage] / 1000.0)


def ms_since(started: float) -> float:
    """Milliseconds since a ``time.perf_counter()`` reading: the one clock of stage timings and latencies."""
    return (time.perf_counter() - started) * 1000.0


# ------------------------------------------------------------------------------------- logging
LOGGER_NAME = "resnet50"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
NEAR_LIMIT_FRACTION = 0.8


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Human-readable variant for development (LOG_FORMAT=text)."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED)
        base = f"{self.formatTime(record)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        return f"{base} {extras}".rstrip()


def configure_logging(level: str = "INFO", fmt: str = "json") -> logging.Logger:
    """Set up (idempotently) the handler's logger and return it."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    for existing in list(logger.handlers):
        logger.removeHandler(existing)
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    logger.addHandler(stream)
    return logger


@dataclass(frozen=True)
class LogThresholds:
    """When a successful request's line is a WARNING: slow, or near a size limit."""

    slow_request_ms: float
    max_file_size: int
    max_image_pixels: int


def rounded_timing(timing_ms: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in timing_ms.items()}


def log_prediction(log: logging.Logger, state: RequestState, body: dict, thresholds: LogThresholds) -> None:
    """The success line of a request answered with this service's JSON (the /predict forms, KServe v1)."""
    latency = ms_since(state.started)
    images = [r["image"] for r in body["results"] if "image" in r] if state.multi else [body["image"]]
    near_limit = (any(len(item.image_bytes) > NEAR_LIMIT_FRACTION * thresholds.max_file_size
                      for item in state.items)
                  or any(image["width"] * image["height"] > NEAR_LIMIT_FRACTION * thresholds.max_image_pixels
                         for image in images))
    slow = latency > thresholds.slow_request_ms
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
    log.log(level, "prediction", extra=fields)


def log_v2_prediction(log: logging.Logger, state: RequestState, thresholds: LogThresholds) -> None:
    """The success line of an Open Inference Protocol request (its answer is a tensor, not a body)."""
    latency = ms_since(state.started)
    output = state.wire_request.output
    log.log(logging.WARNING if latency > thresholds.slow_request_ms else logging.INFO, "prediction",
            extra={"event": "prediction", "request_id": state.request_id, "status": 200, "form": "v2",
                   "latency_ms": round(latency, 2), "images": len(state.items),
                   "timing_ms": rounded_timing(state.timing_ms), "image_bytes": state.image_bytes,
                   "binary": output.binary, "classification": output.classification})


def log_request_failed(log: logging.Logger, state: RequestState) -> None:
    error = state.error
    log.error(error.message, extra={
        "event": "request_failed", "request_id": state.request_id, "status": error.status,
        "code": error.code, "latency_ms": ms_since(state.started),
        "image_bytes": state.image_bytes if state.items else None,
    })
