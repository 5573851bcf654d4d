"""The tarpit for shed predictions (scripts/service/shedding.py) and how nginx reaches it: the hold sized
from the queue, the cap on held requests, every limit_conn route's 598 turned into the held 503 in the
route's own error format, in the public server and the gRPC front's."""

from __future__ import annotations

import re
import threading

import pytest

from scripts.service.readiness import ManagementPoller, Responder, Snapshot
from scripts.service.shedding import ShedTarpit, shed_hold_seconds
from tests.unit.test_grpc_config import rendered_nginx, servers


@pytest.mark.parametrize("queue, expected", [(None, 1.0), (0, 0.0), (8, 0.25), (32, 1.0), (100, 1.0), (-3, 0.0)])
def test_the_hold_grows_with_the_queue_up_to_the_setting(queue, expected):
    assert shed_hold_seconds(queue, max_inflight=32, hold_max_s=1.0) == pytest.approx(expected)


@pytest.mark.parametrize("queue, shed, expected", [(0, 8, 0.25), (8, 0, 0.25), (8, 16, 0.5), (24, 16, 0.75),
                                                   (0, 32, 1.0), (0, 500, 1.0), (None, 0, 1.0)])
def test_the_hold_takes_the_larger_of_the_queue_and_the_shed_count(queue, shed, expected):
    assert shed_hold_seconds(queue, 32, 1.0, recently_shed=shed) == pytest.approx(expected)


def test_no_hold_when_turned_off():
    assert shed_hold_seconds(None, 32, 0.0) == shed_hold_seconds(32, 32, 0.0, recently_shed=64) == 0.0


def test_a_storm_is_held_even_when_the_queue_reads_empty():
    """The queue is a 0.5 s sample and once read ~0 through a whole storm: the shed count still holds it."""
    now = [100.0]
    tarpit = ShedTarpit(max_inflight=4, hold_max_s=1.0, sleep=lambda s: None, clock=lambda: now[0])
    assert [tarpit.hold(0) for _ in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    now[0] += 1.5  # the storm is over: a lone shed request a second and a half later
    assert tarpit.hold(0) == pytest.approx(0.25)


def test_held_requests_are_capped_and_counted():
    slept: list[float] = []
    release = threading.Event()

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        release.wait(5)

    tarpit = ShedTarpit(max_inflight=4, hold_max_s=0.5, max_held=2, sleep=sleep)
    holders = [threading.Thread(target=tarpit.hold, args=(4,)) for _ in range(2)]
    for holder in holders:
        holder.start()
    while len(slept) < 2:
        pass
    assert tarpit.hold(4) == 0.0  # both slots taken: answered at once, never a third sleeping thread
    release.set()
    for holder in holders:
        holder.join(5)
    assert slept == [0.5, 0.5]
    assert tarpit.shed == 3 and tarpit.held_seconds == pytest.approx(1.0)
    text = tarpit.metrics()
    assert "resnet50_shed_total 3\n" in text and "resnet50_shed_hold_seconds_total 1.000\n" in text


def test_the_responder_holds_by_the_snapshot_queue_then_answers_503():
    poller = ManagementPoller("resnet50", None, lambda: 0, lambda: None)
    poller.snapshot = Snapshot(taken=1e12, frontend_up=True, registered=True,
                               default={"jobQueueStatus": {"pendingRequests": 16}, "workers": []})
    poller.current = lambda: poller.snapshot  # no staleness check for this fixed snapshot
    held: list[int | None] = []
    tarpit = ShedTarpit(max_inflight=32, hold_max_s=1.0, sleep=lambda s: None)
    original = tarpit.hold
    tarpit.hold = lambda queue: held.append(queue) or original(queue)
    answer = Responder(poller, tarpit).answer("/_shed", "rid")
    assert answer.status == 503 and answer.body == "" and answer.headers["X-Shed-Held-Ms"] == "500"
    assert held == [16]
    assert "resnet50_shed_total 1" in Responder(poller, tarpit).metrics() + tarpit.metrics()


def limit_conn_locations(server: str) -> list[str]:
    return [block for block in server.split("        location ")[1:]
            if re.search(r"^\s+limit_conn inflight \d+;", block, re.M)]


def test_every_shedding_route_holds_then_answers_in_its_own_format(tmp_path):
    nginx = rendered_nginx(tmp_path, SHED_HOLD_MS="2500")
    assert "limit_conn_status 598;" in nginx
    for address, server in servers(nginx).items():
        routes = limit_conn_locations(server)
        if not routes:
            continue
        for route in routes:  # 598 never reaches a client
            assert "error_page 598 = @shed;" in route and "recursive_error_pages on;" in route, route[:120]
        assert "location @shed {" in server and "location = /_shed {" in server, address
        shed = server[server.index("location = /_shed {"):]
        assert "internal;" in shed and "proxy_pass http://readiness/_shed;" in shed
        assert "proxy_read_timeout 4s;" in shed  # the hold (2.5 s) plus a margin
        start = server.index("location @overloaded {")
        overloaded = server[start:server.index("\n        }\n", start)]
        assert overloaded.count('"code":"overloaded"') == 2 and overloaded.count("Retry-After 1") == 2
    assert len([s for s in servers(nginx).values() if limit_conn_locations(s)]) == 2  # public and the front's
    assert re.search(r'map \$uri \$error_format \{\s*default\s+classic;\s*"~\^/v\[12\]/"\s+v2;', nginx)
