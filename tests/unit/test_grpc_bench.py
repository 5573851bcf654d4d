"""The benchmark's Open Inference Protocol targets (scripts/bench/grpc_load.py, benchmark.py --protocols):
the requests they send are what the handler reads, the gRPC sender counts statuses as HTTP's, and
the report compares the two transports."""

from __future__ import annotations

import pytest

from handler import wire_v2
from scripts.bench import benchmark
from scripts.bench.grpc_load import grpc_sender, http_sender, v2_grpc_request, v2_http_request
from scripts.bench.loadgen import csv_rows
from scripts.service.grpc_front.server import GrpcFront
from scripts.service.grpc_front.proto import load_protocol
from scripts.service.grpc_front.translate import infer_http_request
from scripts.service.readiness import Responder
from tests.support import jpeg_bytes
from tests.unit.grpc_fakes import CATEGORIES, FakeNginx, front_settings, scripted_poller

IMAGE = jpeg_bytes(64, 48, seed=5)


def test_both_requests_carry_the_image_as_the_handler_reads_it():
    path, body, headers = v2_http_request(IMAGE)
    assert path == "/v2/models/resnet50/infer"
    parsed = wire_v2.parse_infer_request({"body": body}, {k.lower(): v for k, v in headers.items()}, 4, 16)
    assert parsed.parsed.images == (IMAGE,) and parsed.output.binary
    message = load_protocol().ModelInferRequest.FromString(v2_grpc_request(IMAGE))
    upstream = infer_http_request(message, {})
    translated = wire_v2.parse_infer_request({"body": upstream.body},
                                             {k.lower(): v for k, v in upstream.headers.items()}, 4, 16)
    assert translated.parsed.images == (IMAGE,) and translated.output == parsed.output


def test_protocols_option():
    assert benchmark.parse_protocols("v2-http, v2-grpc") == ["v2-http", "v2-grpc"]
    for bad in ("", "grpc", "v2-http,v2-http"):
        with pytest.raises(ValueError):
            benchmark.parse_protocols(bad)
    with pytest.raises(SystemExit):
        benchmark.main(["--protocols", "v2-grpc", "--stock"])


def test_a_closed_level_over_grpc_and_http_against_the_front(tmp_path):
    nginx = FakeNginx()
    poller = scripted_poller(tmp_path)
    front = GrpcFront(front_settings(nginx.port), Responder(poller), poller, lambda entry: None).start()
    try:
        target = f"127.0.0.1:{front.port}"
        level = benchmark.run_level("", b"", 3, 12, 60, make_sender=lambda: grpc_sender(target, v2_grpc_request(IMAGE))(30))
        assert (level["ok"], level["requests"], level["errors"]) == (12, 12, {})
        # A status the service refuses with is counted as its HTTP twin.
        bad = load_protocol().ModelInferRequest(model_name="other")
        assert grpc_sender(target, bad.SerializeToString())(30)() == 404
        assert grpc_sender("127.0.0.1:1", bad.SerializeToString())(2)() == 503  # nothing listening
        path, body, headers = v2_http_request(IMAGE)
        send = http_sender(f"http://127.0.0.1:{nginx.port}{path}", body, headers)(30)
        assert send() == 200 and len(CATEGORIES) == 4
    finally:
        front.stop(0)
        nginx.stop()


def test_the_report_compares_the_transports():
    def level(rps, p99):
        return {"concurrency": 8, "req_per_s": rps, "p50_ms": 400.0, "p99_ms": p99, "requests": 100, "ok": 100,
                "errors": {}, "seconds": 10.0, "loadgen_cpu_s": 1.0, "loadgen_cores": 0.1}

    report = {"rounds": 2, "protocols": {"v2-http": [level(10.0, 800.0)], "v2-grpc": [level(10.5, 760.0)]},
              "protocols_rounds_ratio": [[1.04, 1.06]]}
    lines = "\n".join(benchmark._protocol_lines(report))
    assert "| 8 | 10.0 | 400.0 / 800.0 | 10.5 | 400.0 / 760.0 | **1.05x** | 0.95 | 1.04, 1.06 | - / - |" in lines
    report["protocols"]["v2-http"][0]["service_cpu_s"] = 12.0  # 120 ms per call over 100 calls
    report["protocols"]["v2-grpc"][0]["service_cpu_s"] = 12.5
    assert "| 120 / 125 |" in "\n".join(benchmark._protocol_lines(report))
    report["protocols_p99_ratio_interval"] = [(0.87, 1.04)]
    assert "| **1.05x** | 0.95 (0.87–1.04) |" in "\n".join(benchmark._protocol_lines(report))
    rows = csv_rows({"levels": [], **report})
    assert [(r["target"], r["throughput_rps"]) for r in rows] == [("v2-http", 10.0), ("v2-grpc", 10.5)]
