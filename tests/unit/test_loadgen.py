"""The benchmark's load generation (scripts/bench/loadgen.py): arrival schedules, nearest-rank
percentiles, the open-loop runner's accounting (latency from the intended send time, late and
dropped sends, errors) and the CSV / JSON writers."""

import csv
import json
import math
import random
import statistics
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from scripts.bench.loadgen import (CSV_FIELDS, arrival_offsets, csv_rows, latency_summary, parse_fractions,
                             parse_rates, percentile, percentile_ratio_interval, pool_open_rounds, public,
                             run_open_level, write_csv, write_json)


# ------------------------------------------------------------------------- schedules
def test_fixed_arrivals_are_evenly_spaced_and_bounded_by_time():
    assert arrival_offsets(4, 100, 1.0, "fixed") == [0.0, 0.25, 0.5, 0.75]


def test_arrivals_are_bounded_by_count():
    assert len(arrival_offsets(1000, 7, 60, "fixed")) == 7
    assert len(arrival_offsets(1000, 7, 60, "poisson")) == 7


def test_poisson_arrivals_have_exponential_gaps_at_the_rate():
    offsets = arrival_offsets(50, 4000, 10_000, "poisson", seed=3)
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert all(g >= 0 for g in gaps) and offsets[0] == 0.0
    assert statistics.fmean(gaps) == pytest.approx(1 / 50, rel=0.06)
    # exponential: standard deviation equal to the mean (fixed arrivals: 0)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.08)


def test_poisson_arrivals_are_reproducible_per_seed():
    assert arrival_offsets(10, 50, 100, seed=1) == arrival_offsets(10, 50, 100, seed=1)
    assert arrival_offsets(10, 50, 100, seed=1) != arrival_offsets(10, 50, 100, seed=2)
    assert all(t < 2.0 for t in arrival_offsets(10, 10_000, 2.0, seed=5))


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_a_rate_must_be_positive_and_finite(rate):
    with pytest.raises(ValueError):
        arrival_offsets(rate, 10, 10)


def test_unknown_arrivals_are_refused():
    with pytest.raises(ValueError):
        arrival_offsets(1, 10, 10, "bursty")


def test_fractions_and_rates_parse():
    assert parse_fractions("0.5,0.8,1") == [0.5, 0.8, 1.0]
    assert parse_fractions("50%, 80%,100%") == [0.5, 0.8, 1.0]
    assert parse_rates("2.5,10") == [2.5, 10.0]
    for bad in ("0", "-0.5", "6", ""):
        with pytest.raises(ValueError):
            parse_fractions(bad)
    with pytest.raises(ValueError):
        parse_rates("5,0")


# ------------------------------------------------------------------------ percentiles
def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    ten = list(range(1, 11))
    assert percentile(ten, 90) == 9 and percentile(ten, 95) == 10 and percentile(ten, 99) == 10
    # 0.57 * 100 is 56.99999999999999 in floating point: the rank must still be 57
    assert percentile(values, 57) == 57
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0  # sorts first
    # never above the sample that q % of the values reach: the median of four is the second
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 51) == 3
    assert math.isnan(percentile([], 50))


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.1] * 90 + [1.0] * 10)
    assert summary == {"p50_ms": 100.0, "p90_ms": 100.0, "p95_ms": 1000.0, "p99_ms": 1000.0, "max_ms": 1000.0}
    assert latency_summary([], "service_")["service_p99_ms"] is None


# ------------------------------------------------------------------------- open loop
def sleeper(seconds, status=200):
    def make():
        def send():
            time.sleep(seconds)
            return status
        return send
    return make


def test_open_loop_keeps_the_rate_when_the_server_keeps_up():
    level = run_open_level(sleeper(0.001), rate=100, max_requests=20, max_seconds=10, arrivals="fixed",
                           late_ms=80)
    assert level["scheduled"] == level["sent"] == level["ok"] == 20
    assert level["dropped"] == 0 and level["late"] == 0 and level["errors"] == {}
    assert level["target_rps"] == 100 and level["offered_rps"] == pytest.approx(100, rel=0.01)
    assert level["seconds"] == pytest.approx(0.2, abs=0.1)  # 20 arrivals at 100/s: a 0.2 s window
    assert level["achieved_rps"] == pytest.approx(100, rel=0.35)
    assert level["p99_ms"] < 100
    assert level["loadgen_cpu_s"] >= 0 and "_latencies" in level


def test_achieved_rate_is_over_the_window_not_the_first_answers():
    """Two arrivals 0.5 s apart in a 1 s level: 2 answers per second, not 2 in the ~0.5 s
    between the first send and the last answer."""
    level = run_open_level(sleeper(0.001), rate=2, max_requests=100, max_seconds=1.0, arrivals="fixed")
    assert level["scheduled"] == 2 and level["offered_rps"] == 2.0
    assert level["seconds"] == pytest.approx(1.0, abs=0.05) and level["achieved_rps"] == pytest.approx(2.0, rel=0.05)


def test_open_loop_latency_counts_the_wait_behind_a_slow_server():
    """One sender, a 100 ms server and a request due every 20 ms: each request waits for the
    ones before it. Measured from the intended send time the tenth takes ~0.8 s; from its
    actual send (what a closed-loop client reports) only 0.1 s: coordinated omission."""
    level = run_open_level(sleeper(0.1), rate=50, max_requests=10, max_seconds=10, arrivals="fixed",
                           max_inflight=1, late_ms=10, max_lateness_s=30)
    assert level["ok"] == 10 and level["dropped"] == 0
    assert level["late"] >= 8
    assert level["service_p99_ms"] < 300
    assert level["max_ms"] >= 600  # (10 * 0.1 s) - (9 * 0.02 s) = 0.82 s
    assert level["achieved_rps"] < 12  # 10 answers in about 1 s, not the 50/s offered


def test_open_loop_drops_sends_that_cannot_start_in_time():
    level = run_open_level(sleeper(0.2), rate=100, max_requests=10, max_seconds=10, arrivals="fixed",
                           max_inflight=1, max_lateness_s=0.3)
    assert level["scheduled"] == 10
    assert level["sent"] + level["dropped"] == 10
    assert level["dropped"] >= 6 and level["sent"] >= 1


def test_open_loop_counts_errors_and_failed_sends():
    calls = iter(range(1000))
    lock = threading.Lock()

    def make():
        def send():
            with lock:
                n = next(calls)
            if n % 3 == 1:
                return 503
            if n % 3 == 2:
                raise ConnectionError("refused")
            return 200
        return send

    level = run_open_level(make, rate=200, max_requests=30, max_seconds=10, arrivals="fixed")
    assert level["sent"] == 30 and level["ok"] == 10
    assert level["errors"] == {"0": 10, "503": 10}
    assert len(level["_latencies"]) == 10


def open_round(ok, seconds, latencies, errors=None, cpu=0.5):
    return {"mode": "open", "arrivals": "poisson", "target_rps": 10.0, "scheduled": ok + 1, "sent": ok, "ok": ok,
            "errors": errors or {}, "dropped": 1, "late": 2, "seconds": seconds, "achieved_rps": ok / seconds,
            "loadgen_cpu_s": cpu, "_latencies": latencies, "_service_times": latencies, "service_cpu_s": 1.0}


def test_open_rounds_pool_into_one_level():
    pooled = pool_open_rounds([open_round(10, 1.0, [0.1] * 10), open_round(20, 3.0, [0.2] * 19 + [2.0], {"503": 1})])
    assert pooled["ok"] == 30 and pooled["scheduled"] == 32 and pooled["dropped"] == 2 and pooled["late"] == 4
    assert pooled["achieved_rps"] == pytest.approx(30 / 4.0)  # over all the time, not a mean of rates
    assert pooled["rounds_achieved_rps"] == [10.0, 20 / 3.0]
    assert pooled["p50_ms"] == 200.0 and pooled["max_ms"] == 2000.0
    assert pooled["errors"] == {"503": 1}
    assert pooled["loadgen_cpu_s"] == 1.0 and pooled["loadgen_cores"] == 0.25
    assert pooled["service_cpu_s"] == 2.0


# ---------------------------------------------------------------------------- output
def report_with_every_kind():
    closed = {"mode": "closed", "concurrency": 8, "requests": 40, "ok": 39, "seconds": 2.0, "req_per_s": 19.5,
              "p50_ms": 400.0, "p90_ms": 450.0, "p95_ms": 480.0, "p99_ms": 500.0, "max_ms": 510.0,
              "errors": {"503": 1}, "loadgen_cpu_s": 0.4, "loadgen_cores": 0.2, "service_cpu_s": 3.9,
              "_latencies": [0.4] * 39}
    opened = pool_open_rounds([open_round(10, 1.0, [0.1] * 10)])
    opened.update(fraction=0.5, capacity_rps=20.0)
    return {"levels": [closed], "stock_levels": [dict(closed, req_per_s=9.0)],
            "variants": [{"label": "PRECISION=int8", "levels": [dict(closed, req_per_s=27.0)]}],
            "peer_levels": [dict(closed, req_per_s=7.5, p99_ms=float("nan"))],
            "open_loop": {"arrivals": "poisson", "targets": {"default": [opened], "kserve": [dict(opened, ok=9)]}}}


def test_csv_has_one_row_per_service_and_level(tmp_path):
    path = tmp_path / "levels.csv"
    assert write_csv(path, report_with_every_kind()) == 6
    with path.open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CSV_FIELDS
        rows = list(reader)
    assert [(r["target"], r["mode"]) for r in rows] == [
        ("default", "closed"), ("default", "open"), ("PRECISION=int8", "closed"), ("stock", "closed"),
        ("kserve", "closed"), ("kserve", "open")]
    default_open = rows[1]
    assert default_open["throughput_rps"] == "10.0" and default_open["fraction"] == "0.5"
    assert default_open["dropped"] == "1" and default_open["concurrency"] == ""
    assert rows[0]["errors"] == "1" and rows[0]["p90_ms"] == "450.0" and rows[0]["service_cpu_s"] == "3.9"
    assert rows[3]["throughput_rps"] == "9.0" and rows[5]["ok"] == "9"
    assert [row["target"] for row in csv_rows(report_with_every_kind())] == [r["target"] for r in rows]


def test_json_is_strict_and_leaves_out_the_samples(tmp_path):
    path = tmp_path / "out" / "report.json"
    write_json(path, report_with_every_kind())

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    loaded = json.loads(path.read_text(), parse_constant=refuse)
    assert loaded["peer_levels"][0]["p99_ms"] is None  # NaN
    assert "_latencies" not in loaded["levels"][0]
    assert "_service_times" not in loaded["open_loop"]["targets"]["default"][0]
    assert loaded["levels"][0]["req_per_s"] == 19.5
    assert public({"a": [float("inf"), 1.5], "_b": 1}) == {"a": [None, 1.5]}


# ------------------------------------------------------------------ p99 ratio interval
def _spread(n: int, low: float, high: float) -> list[float]:
    return [low + (high - low) * i / (n - 1) for i in range(n)]


def _turns(latencies: list[float], turns: int) -> list[list[float]]:
    return [latencies[i::turns] for i in range(turns)]


def test_the_p99_ratio_interval_of_one_distribution_holds_one():
    latencies = _spread(800, 0.3, 0.6)
    low, high = percentile_ratio_interval(_turns(latencies, 8), _turns(latencies[::-1], 8))
    assert low <= 1.0 <= high
    assert high - low < 0.1  # 800 evenly spread calls pin their p99 closely


def test_a_slower_tail_is_outside_the_interval_of_no_difference():
    http = _spread(800, 0.3, 0.5)
    grpc = _spread(800, 0.3, 0.6)  # p99 ≈ 0.597 against ≈ 0.498: 1.2×
    low, high = percentile_ratio_interval(_turns(grpc, 8), _turns(http, 8))
    assert 1.0 < low <= percentile(grpc, 99) / percentile(http, 99) <= high


def test_a_slow_minute_that_both_sides_shared_widens_the_interval_but_is_paired():
    """Turn 3 ran while the machine was slow, for both: resampling pairs of turns keeps that common."""
    calm, slow = _spread(100, 0.3, 0.5), _spread(100, 0.6, 1.0)
    grpc = [calm] * 3 + [slow] + [calm] * 4
    http = [[v * 1.01 for v in turn] for turn in grpc]
    low, high = percentile_ratio_interval(grpc, http)
    assert 0.95 < low <= high < 1.0  # gRPC 1 % faster in every turn: the interval says so, slow turn or not
    unpaired = percentile_ratio_interval(grpc, [calm] * 8)  # the slow turn on one side only
    assert unpaired[1] - unpaired[0] > high - low


def test_few_turns_give_a_wider_interval_and_the_same_one_for_the_same_seed():
    rng = random.Random(3)
    noisy = [[rng.uniform(0.3, 0.6) for _ in range(100)] for _ in range(12)]
    other = [[rng.uniform(0.3, 0.6) for _ in range(100)] for _ in range(12)]
    wide = percentile_ratio_interval(noisy[:2], other[:2], resamples=300)
    narrow = percentile_ratio_interval(noisy, other, resamples=300)
    assert wide[1] - wide[0] >= narrow[1] - narrow[0]
    assert percentile_ratio_interval(noisy, other, resamples=300, seed=7) == \
        percentile_ratio_interval(noisy, other, resamples=300, seed=7)


def test_no_interval_without_a_pair_of_turns_with_calls():
    assert percentile_ratio_interval([], [[0.1]]) is None
    assert percentile_ratio_interval([[0.1], []], [[], [0.2]]) is None
