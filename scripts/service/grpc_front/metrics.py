"""The gRPC front's Prometheus metrics: requests by method and status code, and a latency histogram.

Rendered as text and appended to scripts/service/readiness.py's /metrics answer (its
``metric_sources``), which nginx appends to TorchServe's own metrics on GET /metrics
(config/nginx-metrics-routes.part). Updated from the front's event loop, read from the readiness
responder's threads: one lock.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

# Seconds. Inference here takes 50 ms to a few seconds under load; health RPCs well under 1 ms.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUESTS = "resnet50_grpc_requests_total"
DURATION = "resnet50_grpc_request_duration_seconds"


class GrpcMetrics:
    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._requests: Counter = Counter()  # (method, code) -> count
        self._histograms: dict[str, list] = {}  # method -> [bucket counts..., sum, count]

    def observe(self, method: str, code: str, seconds: float) -> None:
        with self._lock:
            self._requests[(method, code)] += 1
            histogram = self._histograms.setdefault(method, [0] * len(self.buckets) + [0.0, 0])
            index = bisect.bisect_left(self.buckets, seconds)
            if index < len(self.buckets):
                histogram[index] += 1
            histogram[-2] += seconds
            histogram[-1] += 1

    def render(self) -> str:
        """Prometheus text format 0.0.4 (cumulative buckets, +Inf = count)."""
        with self._lock:
            requests = sorted(self._requests.items())
            histograms = {method: list(values) for method, values in sorted(self._histograms.items())}
        lines = [f"# HELP {REQUESTS} gRPC requests answered on GRPC_PORT, by method and gRPC status code.",
                 f"# TYPE {REQUESTS} counter"]
        lines += [f'{REQUESTS}{{method="{method}",code="{code}"}} {count}' for (method, code), count in requests]
        lines += [f"# HELP {DURATION} Time from a gRPC request's arrival to its answer, by method.",
                  f"# TYPE {DURATION} histogram"]
        for method, values in histograms.items():
            cumulative = 0
            for bound, count in zip(self.buckets, values):
                cumulative += count
                lines.append(f'{DURATION}_bucket{{method="{method}",le="{bound:g}"}} {cumulative}')
            lines.append(f'{DURATION}_bucket{{method="{method}",le="+Inf"}} {values[-1]}')
            lines.append(f'{DURATION}_sum{{method="{method}"}} {values[-2]:.6f}')
            lines.append(f'{DURATION}_count{{method="{method}"}} {values[-1]}')
        return "\n".join(lines) + "\n"
