"""scripts/bench/plot.py: the benchmark's pictures come from its CSV rows alone."""

from __future__ import annotations

import pytest

from scripts.bench.loadgen import CSV_FIELDS
from scripts.bench.plot import draw, series


def row(**values) -> dict:
    return {field: str(values.get(field, "")) for field in CSV_FIELDS}


ROWS = [
    row(target="default", mode="closed", concurrency=8, throughput_rps=17.2, p99_ms=742),
    row(target="default", mode="closed", concurrency=1, throughput_rps=13.9, p99_ms=100),
    row(target="stock", mode="closed", concurrency=1, throughput_rps=10.6, p99_ms=176),
    row(target="default", mode="open", fraction=1.0, target_rps=17.2, throughput_rps=16.1, p99_ms=1790),
    row(target="default", mode="open", fraction=0.5, target_rps=8.6, throughput_rps=8.0, p99_ms=333),
    row(target="default", mode="closed", concurrency=16, throughput_rps=0, p99_ms=""),  # no answer: no point
]


def test_series_are_per_service_and_ordered_along_their_axis():
    closed, opened = series(ROWS)
    assert closed == {"default": [(13.9, 100.0, 1), (17.2, 742.0, 8)], "stock": [(10.6, 176.0, 1)]}
    assert opened == {"default": [(8.6, 333.0, 8.0), (17.2, 1790.0, 16.1)]}


def test_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "benchmark.png"
    assert draw(ROWS, path, "a title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_to_draw_without_closed_loop_rows(tmp_path):
    pytest.importorskip("matplotlib")
    assert not draw([r for r in ROWS if r["mode"] == "open"], tmp_path / "x.png")
