"""What the gRPC front itself adds to each call, from a service log (not a timed test: a reading).

    python -m scripts.bench.grpc_front_overhead RUN_DIR/service.log [--method ModelInfer]

Each ``grpc.access`` line (LOG_LEVEL=INFO writes one per call) holds the call's ``latency_s`` as the
front saw it and ``upstream_latency_s``, the part spent waiting on nginx and TorchServe behind it;
the difference is the front's own share: the gRPC call, the translation to the HTTP v2 request and
back, the loopback hop. Printed as percentiles beside the calls' whole latency, so the front's cost
in the tail reads as a fraction of the tail (docs/performance.md, "gRPC against HTTP").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable

from scripts.bench.loadgen import percentile

QUANTILES = (50, 90, 99, 100)


def front_shares(lines: Iterable[str], method: str = "ModelInfer") -> list[tuple[float, float]]:
    """(the call's whole latency, the front's own share), in seconds, for each successful call."""
    shares = []
    for line in lines:
        if '"grpc.access"' not in line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("grpc_status") != "OK" or not entry.get("method", "").endswith(f"/{method}"):
            continue
        whole, upstream = entry.get("latency_s"), entry.get("upstream_latency_s")
        if isinstance(whole, (int, float)) and isinstance(upstream, (int, float)):
            shares.append((whole, max(0.0, whole - upstream)))
    return shares


def summary(shares: list[tuple[float, float]]) -> dict:
    own = [share for _, share in shares]
    whole = [latency for latency, _ in shares]
    out: dict = {"calls": len(shares)}
    for q in QUANTILES:
        name = "max" if q == 100 else f"p{q}"
        out[f"front_{name}_ms"] = round(percentile(own, q) * 1000, 1) if own else None
        out[f"call_{name}_ms"] = round(percentile(whole, q) * 1000, 1) if whole else None
    if own and out["call_p99_ms"]:
        out["front_p99_of_call_p99"] = round(out["front_p99_ms"] / out["call_p99_ms"], 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="a service log (RUN_DIR/service.log) written at LOG_LEVEL=INFO")
    parser.add_argument("--method", default="ModelInfer")
    args = parser.parse_args(argv)
    with args.log.open(encoding="utf-8", errors="replace") as lines:
        result = summary(front_shares(lines, args.method))
    if not result["calls"]:
        print(f"no successful {args.method} call with upstream_latency_s in {args.log} "
              "(grpc.access lines are INFO: start with LOG_LEVEL=INFO)", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
