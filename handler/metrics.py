"""The handler's Prometheus metrics, emitted through TorchServe's metrics cache.

Declared in config/metrics.yaml (TorchServe drops undeclared metrics in Prometheus mode) and
exposed by TorchServe's metrics API. Outside TorchServe (unit tests, in-process benchmarks)
the context has no metrics cache and every call here is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("resnet50.metrics")

COUNTERS = {"resnet50_requests_total": ("Count", ["ModelName", "status"]),
            "resnet50_errors_total": ("Count", ["ModelName", "code"]),
            "resnet50_image_bytes_total": ("Bytes", ["ModelName"])}
# Durations in seconds: Prometheus' default histogram buckets (5 ms .. 10 s) are made for them.
HISTOGRAMS = {"resnet50_preprocess_seconds": ("Seconds", ["ModelName"]),
              "resnet50_inference_seconds": ("Seconds", ["ModelName"]),
              "resnet50_postprocess_seconds": ("Seconds", ["ModelName"]),
              "resnet50_batch_size": ("Count", ["ModelName"])}


class HandlerMetrics:
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
        for kind, table in ((MetricTypes.COUNTER, COUNTERS), (MetricTypes.HISTOGRAM, HISTOGRAMS)):
            for name, (unit, dimensions) in table.items():
                self._metrics[name] = cache.add_metric_to_cache(name, unit, dimensions, kind)

    def observe(self, name: str, value: float, *labels: str) -> None:
        metric = self._metrics.get(name)
        if metric is None:
            return
        try:
            metric.add_or_update(value, [self.model_name, *labels])
        except Exception:  # noqa: BLE001 - metrics must never fail a request
            log.warning("could not record metric %s", name, exc_info=True)
