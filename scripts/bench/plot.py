#!/usr/bin/env python3
"""The benchmark's pictures, from its CSV (scripts/bench/loadgen.py CSV_FIELDS), so any run can be drawn again:

    python -m scripts.bench.plot docs/benchmarks/benchmark.csv --out docs/benchmarks/benchmark.png

Left: throughput against p99 latency in the closed loop, one line per service (this service, its
variants, TorchServe's stock handler, the KServe peer), one point per concurrency level, labelled: the
trade-off a model server is judged by (further right is more throughput, lower is faster; the knee is
where more clients only add queueing). Right: the open loop, p99 against the offered load in req/s, one
line per service: how each behaves at the same arrival rates as it approaches and passes its capacity.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

COLOURS = {"default": "tab:blue", "stock": "tab:gray", "kserve": "black"}
OTHER_COLOURS = ["tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:olive", "tab:cyan"]


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def series(rows: list[dict]) -> tuple[dict[str, list[tuple]], dict[str, list[tuple]]]:
    """(closed, open): per service, its points sorted along the x axis.
    closed: (throughput, p99, concurrency); open: (offered req/s, p99, achieved req/s)."""
    closed: dict[str, list[tuple]] = defaultdict(list)
    opened: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        throughput, p99 = _number(row.get("throughput_rps")), _number(row.get("p99_ms"))
        if throughput is None or p99 is None:
            continue
        if row.get("mode") == "closed":
            closed[row["target"]].append((throughput, p99, int(float(row["concurrency"]))))
        elif row.get("mode") == "open" and _number(row.get("target_rps")) is not None:
            opened[row["target"]].append((_number(row["target_rps"]), p99, throughput))
    for points in closed.values():
        points.sort(key=lambda point: point[2])  # by concurrency
    for points in opened.values():
        points.sort(key=lambda point: point[0])  # by offered load
    return dict(closed), dict(opened)


def colour_of(name: str, others: dict[str, str]) -> str:
    if name in COLOURS:
        return COLOURS[name]
    return others.setdefault(name, OTHER_COLOURS[len(others) % len(OTHER_COLOURS)])


def draw(rows: list[dict], path: Path, title: str = "") -> bool:
    """Write the two panels to ``path``; False without matplotlib or without any closed-loop point."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    closed, opened = series(rows)
    if not closed:
        return False
    others: dict[str, str] = {}
    panels = 2 if opened else 1
    figure, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False)
    left = axes[0][0]
    for name, points in closed.items():
        colour = colour_of(name, others)
        left.plot([p[0] for p in points], [p[1] for p in points], "o-", color=colour, label=name)
        for throughput, p99, concurrency in points:
            left.annotate(f"c={concurrency}", (throughput, p99), textcoords="offset points", xytext=(4, 3),
                          fontsize=7, color=colour)
    left.set_xlabel("throughput (req/s)")
    left.set_ylabel("p99 latency (ms)")
    left.set_title("Closed loop: throughput against p99", fontsize=10)
    left.set_xlim(left=0)
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="best")
    if opened:
        right = axes[0][1]
        for name, points in opened.items():
            right.plot([p[0] for p in points], [p[1] for p in points], "s-", color=colour_of(name, others),
                       label=name)
        right.set_xlabel("offered load (req/s, Poisson arrivals)")
        right.set_ylabel("p99 latency (ms, from the intended send time)")
        right.set_title("Open loop: p99 against offered load", fontsize=10)
        right.set_xlim(left=0)
        right.set_ylim(bottom=0)
        right.grid(alpha=0.3)
        right.legend(fontsize=8, loc="best")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    with args.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not draw(rows, args.out, args.title):
        print("nothing drawn (matplotlib missing, or no closed-loop rows)", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
