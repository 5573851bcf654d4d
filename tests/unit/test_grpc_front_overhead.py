"""scripts/bench/grpc_front_overhead.py: the front's own share of each call, read from log lines."""

import json

from scripts.bench.grpc_front_overhead import front_shares, main, summary


def access(latency, upstream, status="OK", method="ModelInfer"):
    return json.dumps({"level": "INFO", "logger": "grpc.access", "grpc_status": status,
                       "method": f"/inference.GRPCInferenceService/{method}", "latency_s": latency,
                       "upstream_latency_s": upstream})


def test_only_successful_calls_of_the_method_with_both_times_count():
    lines = [access(0.400, 0.398), access(0.5, 0.49, status="UNAVAILABLE"), access(0.01, 0.009, method="ModelMetadata"),
             json.dumps({"logger": "grpc.access", "grpc_status": "OK", "method": "/x/ModelInfer", "latency_s": 0.3}),
             '{"logger":"nginx.access","latency_s":0.3}', "not json grpc.access", access(0.300, 0.301)]
    shares = front_shares(lines)
    assert [whole for whole, _ in shares] == [0.400, 0.300]
    assert abs(shares[0][1] - 0.002) < 1e-9 and shares[1][1] == 0.0  # a clock's rounding never goes negative


def test_the_summary_puts_the_fronts_tail_beside_the_calls():
    shares = [(0.300 + i / 1000, 0.001 + (0.009 if i == 99 else 0)) for i in range(100)]
    result = summary(shares)
    assert result["calls"] == 100 and result["front_p50_ms"] == 1.0 and result["front_max_ms"] == 10.0
    assert result["call_p99_ms"] == 398.0 and result["front_p99_of_call_p99"] == round(1.0 / 398.0, 4)


def test_a_log_without_such_lines_says_how_to_get_them(tmp_path, capsys):
    log = tmp_path / "service.log"
    log.write_text('{"logger":"service","message":"ready"}\n')
    assert main([str(log)]) == 1
    assert "LOG_LEVEL=INFO" in capsys.readouterr().err
    log.write_text(access(0.4, 0.39) + "\n")
    assert main([str(log)]) == 0
    assert json.loads(capsys.readouterr().out)["calls"] == 1
