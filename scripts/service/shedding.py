"""What a shed request costs: the tarpit that keeps a retry storm off the model's cores.

nginx sheds the predictions beyond MAX_INFLIGHT (``limit_conn``). Answered at once, a client that retries
on every 503 comes straight back: 48 such connections made about 5,000 rejections a second here, and
nginx, the log relay and the load generator itself took the cores from the model (goodput fell to a
third of capacity; docs/performance.md "Retry storms"). So nginx hands each shed request to the
readiness responder (``GET /_shed``, loopback only), which holds it for a time sized from TorchServe's
queue before nginx answers 503 ``overloaded`` with Retry-After. A client that retries at once is slowed
to one try per hold; a client that honours Retry-After waits a little longer than it asked for, while
the queue it would join is full anyway.

The hold is ``SHED_HOLD_MS`` scaled by how loaded the service is, by the larger of two measures, each
against MAX_INFLIGHT: how full TorchServe's queue is (pendingRequests of the readiness snapshot,
sampled every 0.5 s), and how many requests were shed in the last second (counted here, exactly). A
storm meets the whole hold, a brief burst a short one. Why both: the queue alone is a sample, and
once in a whole suite run it read near 0 through a 15-second storm, so the storm went unheld (median
hold 27 ms); a storm always shows in its own shed count. At most ``MAX_HELD`` requests are held at
once (each is a sleeping thread); beyond that they are answered at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_HELD = 256
SHED_WINDOW_S = 1.0  # "how many were shed lately": the last second's count


def shed_hold_seconds(queue_depth: int | None, max_inflight: int, hold_max_s: float, recently_shed: int = 0) -> float:
    """How long to hold a shed request: ``hold_max_s`` times the larger share of MAX_INFLIGHT, the
    queue's or the requests shed in the last second (capped at 1); the whole hold when the queue depth
    is unknown (nginx shed it: the service is full)."""
    if hold_max_s <= 0:
        return 0.0
    if queue_depth is None:
        return hold_max_s
    share = max(max(0, queue_depth), max(0, recently_shed)) / max(1, max_inflight)
    return hold_max_s * min(1.0, share)


class ShedTarpit:
    """Holds shed requests (the readiness responder's ``/_shed``) and counts them for GET /metrics."""

    def __init__(self, max_inflight: int, hold_max_s: float, max_held: int = MAX_HELD,
                 sleep=time.sleep, clock=time.monotonic) -> None:
        self.max_inflight = max_inflight
        self.hold_max_s = hold_max_s
        self._slots = threading.BoundedSemaphore(max_held)
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        # When the last shed requests came: no more than MAX_INFLIGHT are needed for a full share.
        self._recent: deque[float] = deque(maxlen=max(1, max_inflight))
        self.shed = 0
        self.held_seconds = 0.0

    def recently_shed(self) -> int:
        """Requests shed in the last SHED_WINDOW_S (this one included, once counted)."""
        now = self._clock()
        with self._lock:
            self._recent.append(now)
            while self._recent and now - self._recent[0] > SHED_WINDOW_S:
                self._recent.popleft()
            return len(self._recent)

    def hold(self, queue_depth: int | None) -> float:
        """Sleep for the hold (0 when every slot is taken); return the seconds held."""
        seconds = shed_hold_seconds(queue_depth, self.max_inflight, self.hold_max_s, self.recently_shed())
        if seconds > 0 and self._slots.acquire(blocking=False):
            try:
                self._sleep(seconds)
            finally:
                self._slots.release()
        else:
            seconds = 0.0
        with self._lock:
            self.shed += 1
            self.held_seconds += seconds
        return seconds

    def metrics(self) -> str:
        """Prometheus text: how many predictions were shed, and how long they were held in all."""
        with self._lock:
            shed, held = self.shed, self.held_seconds
        return ("# HELP resnet50_shed_total Predictions refused beyond MAX_INFLIGHT (503 overloaded).\n"
                "# TYPE resnet50_shed_total counter\n"
                f"resnet50_shed_total {shed}\n"
                "# HELP resnet50_shed_hold_seconds_total Time shed predictions were held before their 503.\n"
                "# TYPE resnet50_shed_hold_seconds_total counter\n"
                f"resnet50_shed_hold_seconds_total {held:.3f}\n")
