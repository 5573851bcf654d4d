"""KServe v1's read-only routes in scripts/service/readiness.py: GET /v1/models and GET /v1/models/NAME,
answered from the same snapshot as /health, in the shapes KServe's own model server uses
(kserve/protocol/rest/v1_endpoints.py; kserve.errors ModelNotReady 503 and ModelNotFound 404)."""

from __future__ import annotations

import time

import pytest

from scripts.service.readiness import ManagementPoller, Responder, Snapshot, unready_reason


def describe(status: str = "READY") -> dict:
    return {"modelName": "resnet50", "modelVersion": "1.0", "modelUrl": "resnet50.mar",
            "workers": [{"id": "9000", "status": status, "pid": 4242}]}


def responder_with(snapshot: Snapshot, tmp_path) -> Responder:
    poller = ManagementPoller("resnet50", tmp_path, lambda: 0, lambda: "key")
    poller.snapshot = snapshot
    return Responder(poller)


def ready_snapshot() -> Snapshot:
    return Snapshot(taken=time.monotonic(), frontend_up=True, registered=True, default=describe(),
                    versions=(describe(),))


# Snapshots made when a test asks for them: an older one (STALE_AFTER_S) would read as an unreachable frontend.
UNREADY = {
    "starting": lambda: Snapshot(taken=time.monotonic(), frontend_up=False, error="starting"),
    "frontend_unreachable": lambda: Snapshot(taken=time.monotonic(), frontend_up=False,
                                             error="frontend_unreachable: x"),
    "model_not_registered": lambda: Snapshot(taken=time.monotonic(), frontend_up=True, error="model_not_registered"),
    "no_ready_worker": lambda: Snapshot(taken=time.monotonic(), frontend_up=True, registered=True,
                                        default=describe("UNLOADING"), versions=(describe("UNLOADING"),)),
}


def test_model_list_is_the_served_model(tmp_path):
    for snapshot in (ready_snapshot(), *(make() for make in UNREADY.values())):
        answer = responder_with(snapshot, tmp_path).answer("/v1/models", "r1")
        assert (answer.status, answer.body) == (200, {"models": ["resnet50"]})


def test_ready_model_answers_name_and_ready(tmp_path):
    responder = responder_with(ready_snapshot(), tmp_path)
    answer = responder.answer("/v1/models/resnet50", "r1")
    assert (answer.status, answer.body) == (200, {"name": "resnet50", "ready": True})
    assert answer.status == responder.answer("/health", "r1").status  # one readiness source


@pytest.mark.parametrize("reason", sorted(UNREADY))
def test_not_ready_is_kserves_503_with_our_reason(tmp_path, reason):
    snapshot = UNREADY[reason]()
    responder = responder_with(snapshot, tmp_path)
    assert unready_reason(snapshot) == reason
    answer = responder.answer("/v1/models/resnet50", "r2")
    assert answer.status == 503 == responder.answer("/health", "r2").status
    assert answer.body == {"error": "Model with name resnet50 is not ready.", "code": "model_unavailable",
                           "request_id": "r2", "reason": reason}
    assert answer.headers.get("Retry-After") and answer.headers.get("Cache-Control") == "no-store"


def test_a_stale_snapshot_is_not_ready(tmp_path):
    old = Snapshot(taken=time.monotonic() - 60, frontend_up=True, registered=True, default=describe(),
                   versions=(describe(),))
    assert responder_with(old, tmp_path).answer("/v1/models/resnet50", "r3").status == 503


@pytest.mark.parametrize("path, shown", [("/v1/models/other", "other"), ("/v1/models/" + "x" * 300, "x" * 64),
                                         ("/v1/models/res%6Eet", "resnet")])
def test_other_model_names_are_kserves_404(tmp_path, path, shown):
    answer = responder_with(ready_snapshot(), tmp_path).answer(path, "r4")  # (percent-encoding decoded first)
    assert answer.status == 404
    assert answer.body == {"error": f"Model with name {shown} does not exist.", "code": "not_found",
                           "request_id": "r4"}


@pytest.mark.parametrize("path", ["/v1", "/v1/models/resnet50/extra", "/v1/models/"])
def test_other_v1_paths_are_404(tmp_path, path):
    assert responder_with(ready_snapshot(), tmp_path).answer(path, "r5").status == 404
