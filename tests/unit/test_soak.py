"""scripts/bench/soak.py's verdict, without a service: memory growth from the second fifth to the
last, only 200s, and the last fifth's p99 against the second's."""

from __future__ import annotations

from scripts.bench.soak import Outcome, Sample, p99_per_window, verdict

SECONDS = 100.0


def steady(latency: float = 0.2, status: int = 200, late_latency: float | None = None) -> list[Outcome]:
    """One answer per second; the last fifth's latency may differ."""
    return [Outcome(t=float(t), latency_s=late_latency if late_latency is not None and t >= 80 else latency,
                    status=status, image="jpeg") for t in range(100)]


def memory(start_mb: float, end_mb: float, warm_up_mb: float | None = None) -> list[Sample]:
    """A sample every 5 s, rising linearly from start to end; the warm-up fifth may be anything."""
    samples = []
    for t in range(0, 101, 5):
        value = start_mb + (end_mb - start_mb) * t / 100
        if warm_up_mb is not None and t < 20:
            value = warm_up_mb
        samples.append(Sample(t=float(t), total_rss_mb=value, parts={"workers": value * 0.8, "nginx": value * 0.2}))
    return samples


def test_a_flat_run_passes():
    result = verdict(steady(), memory(1000, 1000), SECONDS)
    assert result["passed"], result
    assert result["rss_growth"] == 0 and result["p99_ratio"] == 1.0


def test_the_warm_up_fifth_does_not_count():
    # Memory that climbs while caches fill and then stays flat is not a leak.
    result = verdict(steady(), memory(1000, 1000, warm_up_mb=600), SECONDS)
    assert result["checks"]["rss_growth_at_most_5_percent"], result


def test_growth_over_5_percent_fails_and_names_the_part():
    result = verdict(steady(), memory(1000, 1200), SECONDS)
    assert not result["checks"]["rss_growth_at_most_5_percent"]
    assert result["rss_growth"] > 0.05
    assert result["rss_growth_by_part"]["workers"]["growth"] > 0.05


def test_one_error_fails_the_run():
    outcomes = steady()
    outcomes[50] = Outcome(t=50.0, latency_s=0.1, status=503, image="jpeg")
    result = verdict(outcomes, memory(1000, 1000), SECONDS)
    assert not result["checks"]["only_200s"] and result["statuses"] == {"200": 99, "503": 1}


def test_latency_creeping_up_fails():
    assert not verdict(steady(late_latency=0.4), memory(1000, 1000), SECONDS)["checks"][
        "p99_last_fifth_at_most_1_5x_second"]
    assert verdict(steady(late_latency=0.28), memory(1000, 1000), SECONDS)["checks"][
        "p99_last_fifth_at_most_1_5x_second"]


def test_no_answers_never_passes():
    assert not verdict([], [], SECONDS)["passed"]


def test_windows_cover_the_run():
    windows = p99_per_window(steady(), SECONDS, window=30)
    assert [w["requests"] for w in windows] == [30, 30, 30, 10]
    assert all(w["p99_ms"] == 200.0 for w in windows)
