"""handler/observability.py: metric names declared once (and in config/metrics.yaml), unknown
names refused, TorchServe's own metrics cache fed, and the JSON log lines."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
import ts
import yaml
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from handler import observability
from handler.errors import InvalidImage, InvalidTopK
from handler.observability import (
    METRICS,
    HandlerMetrics,
    UnknownMetric,
    record_requests,
)
from handler.request_parsing import ParsedRequest
from handler.request_state import ImageItem, RequestState
from tests.unit.ts_context import worker_context

REPO = Path(__file__).resolve().parents[2]
METRICS_YAML = REPO / "config" / "metrics.yaml"
TORCHSERVE_DEFAULT_YAML = Path(ts.__file__).parent / "configs" / "metrics.yaml"


def model_metrics(path: Path) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """{name: (type, unit, dimensions)} of a TorchServe metrics file's model_metrics section."""
    sections = yaml.safe_load(path.read_text())["model_metrics"]
    return {metric["name"]: (kind, metric["unit"], tuple(metric["dimensions"]))
            for kind, metrics in sections.items() for metric in metrics}


def test_metrics_yaml_declares_exactly_the_handlers_metrics():
    declared = model_metrics(METRICS_YAML)
    torchserves_own = model_metrics(TORCHSERVE_DEFAULT_YAML)  # HandlerTime, PredictionTime
    handlers = {name: spec for name, spec in declared.items() if name not in torchserves_own}
    assert handlers == {name: (spec.kind, spec.unit, spec.dimensions) for name, spec in METRICS.items()}
    for name in torchserves_own:
        assert declared[name] == torchserves_own[name], f"{name} differs from TorchServe's own declaration"


def test_no_metric_name_is_written_out_beside_its_constant():
    literal = re.compile(r"[\"']resnet50_[a-z_]+[\"']")
    for path in (REPO / "handler").glob("*.py"):
        if path.name != "observability.py":
            assert not literal.findall(path.read_text()), f"{path.name}: use handler/observability.py's constants"


def test_an_unknown_metric_is_an_error_with_or_without_torchserve():
    cache = MetricsCacheYamlImpl(str(METRICS_YAML))
    for metrics in (HandlerMetrics(None, "resnet50"), HandlerMetrics(worker_context(".", metrics=cache), "resnet50")):
        with pytest.raises(UnknownMetric, match="resnet50_request_total"):
            metrics.observe("resnet50_request_total", 1, "200")  # a typo of REQUESTS_TOTAL


def test_without_torchserves_cache_a_declared_metric_is_a_no_op(caplog):
    metrics = HandlerMetrics(worker_context("."), "resnet50")  # the Context of a test: metrics=None
    with caplog.at_level(logging.DEBUG):
        metrics.observe(observability.REQUESTS_TOTAL, 1, "200")
    assert not caplog.records


def test_torchserves_cache_emits_each_metric_with_its_dimensions(caplog):
    cache = MetricsCacheYamlImpl(str(METRICS_YAML))
    cache.initialize_cache()
    metrics = HandlerMetrics(worker_context(".", metrics=cache), "resnet50")
    with caplog.at_level(logging.INFO, logger="ts.metrics.caching_metric"):
        metrics.observe(observability.ERRORS_TOTAL, 1, "invalid_image")
        metrics.observe(observability.INFERENCE_SECONDS, 0.25)
    lines = [record.getMessage() for record in caplog.records if record.name == "ts.metrics.caching_metric"]
    assert lines[0].startswith("[METRICS]resnet50_errors_total.Count:1|#ModelName:resnet50,code:invalid_image|"
                               "#type:COUNTER|")
    assert lines[1].startswith("[METRICS]resnet50_inference_seconds.Seconds:0.25|#ModelName:resnet50|"
                               "#type:HISTOGRAM|")


class Recorded(HandlerMetrics):
    def __init__(self) -> None:
        super().__init__(None, "resnet50")
        self.calls: list[tuple] = []

    def observe(self, name, value, *labels):
        super().observe(name, value, *labels)
        self.calls.append((name, value, *labels))


def test_a_batchs_metrics():
    ok = RequestState(index=0, request_id="a", started=0.0,
                      parsed=ParsedRequest(images=(b"x" * 10, InvalidImage()), top_k=1, source="json", multi=True),
                      timing_ms={"preprocess": 2.0, "inference": 30.0, "postprocess": 1.0})
    ok.items = [ImageItem(position=0, image_bytes=b"x" * 10, prepared=object(), probabilities=torch.ones(2)),
                ImageItem(position=1, error=InvalidImage())]
    failed = RequestState(index=1, request_id="b", started=0.0, error=InvalidTopK(), timing_ms={"preprocess": 0.5})
    health = RequestState(index=2, request_id="c", started=0.0, kind="health")
    metrics = Recorded()
    record_requests(metrics, [ok, failed, health])
    assert metrics.calls == [
        ("resnet50_batch_size", 1),
        ("resnet50_requests_total", 1, "200"),
        ("resnet50_errors_total", 1, "invalid_image"),
        ("resnet50_image_bytes_total", 10),
        ("resnet50_preprocess_seconds", 0.002), ("resnet50_inference_seconds", 0.03),
        ("resnet50_postprocess_seconds", 0.001),
        ("resnet50_requests_total", 1, "400"),
        ("resnet50_errors_total", 1, "invalid_top_k"),
        ("resnet50_preprocess_seconds", 0.0005),
    ]


def test_json_lines_carry_the_extra_fields_on_the_handlers_own_stream(capsys):
    log = observability.configure_logging("INFO", "json")
    observability.configure_logging("INFO", "json")  # again: still one handler, one line per record
    log.info("prediction", extra={"event": "prediction", "request_id": "r1", "timing_ms": {"inference": 1.5}})
    log.debug("not shown at INFO")
    (line,) = capsys.readouterr().out.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "resnet50" and entry["message"] == "prediction"
    assert entry["request_id"] == "r1" and entry["timing_ms"] == {"inference": 1.5}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert log.propagate is False  # never the root logger: TorchServe reads [METRICS] lines there


def test_text_format_for_development(capsys):
    log = observability.configure_logging("warning", "text")
    log.warning("slow", extra={"request_id": "r2"})
    (line,) = capsys.readouterr().out.splitlines()
    assert "WARNING" in line and "resnet50: slow" in line and line.endswith("request_id=r2")
    observability.configure_logging("INFO", "json")
