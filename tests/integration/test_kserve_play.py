"""The pod KServe would make from deploy/kserve (ServingRuntime + InferenceService), run with `podman kube play`
and called with KServe's own Python client (v1 and v2) and tritonclient (scripts/container/kserve_play.py).

Opt-in, as root, after scripts/container/container_smoke.sh has built resnet50-serve:smoke:

    KUBE_PLAY=1 scripts/test.sh tests/integration/test_kserve_play.py

It makes KServe's client venv when missing (scripts/client/kserve_venv.sh); the checks are those of
tests/integration/test_kube_play.py plus KServe's routes, the read-only /mnt/models and the clients.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from handler.settings_table import BY_NAME
from tests.integration.service import REPO_ROOT
from tests.support import assert_every_check_passed, run_report_script

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("KUBE_PLAY") != "1",
        reason="opt-in, runs the image built by scripts/container/container_smoke.sh with podman kube play: "
               "KUBE_PLAY=1 scripts/test.sh tests/integration/test_kserve_play.py (as root)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman kube play with the host's storage needs root"),
]

CHECKS = {
    "ready_within_startup_budget", "health_200", "live_200", "info_200", "predict_jpeg_200",
    "v2_health_ready_200", "v2_model_ready_200", "metrics_on_metrics_port_only",
    "v1_model_ready_200", "v1_predict_200", "kserve_rest_client_v1_v2", "tritonclient_http",
    "tritonclient_grpc", "kserve_grpc_client",
    "processes_run_as_run_as_user", "run_as_non_root", "read_only_root_filesystem", "capabilities_all_dropped",
    "no_new_privileges", "seccomp_runtime_default", "env_as_manifest", "resource_limits_as_manifest",
    "ports_on_loopback_only", "model_store_read_only", "liveness_healthcheck_passes",
    "sigterm_stop_within_grace_exit_0", "model_dir_unchanged", "nothing_left_behind",
}


@pytest.fixture(scope="module")
def played() -> tuple[subprocess.CompletedProcess, dict]:
    # Kept after the run (test-artifacts/ is gitignored): deploy/kserve/README.md quotes the last result.
    report_path = Path(os.environ.get("KSERVE_PLAY_REPORT", REPO_ROOT / "test-artifacts" / "kserve_play.json"))
    return run_report_script([sys.executable, "-m", "scripts.container.kserve_play", "--report", str(report_path)], report_path, timeout=1500)


@pytest.mark.timeout(1600)
def test_every_check_passes(played):
    assert_every_check_passed(*played, CHECKS)


def test_the_pod_is_kserves(played):
    _, report = played
    kserve_pod = report["kserve_pod"]
    (container,) = kserve_pod["spec"]["containers"]
    assert container["name"] == "kserve-container"
    # HTTP on KServe's port, and GRPC_PORT (grpc-v2), which the RawDeployment InferenceService declares.
    assert [p["containerPort"] for p in container["ports"]] == [8080, int(BY_NAME["GRPC_PORT"].default)]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/models")
    assert mount["readOnly"] is True
    played_pod = report["pod_yaml"]
    volume = next(v for v in played_pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["hostPath"]["path"] == report["model_dir"]
    assert report["model_dir_listing"] == ["resnet50.mar"]


def test_kserves_client_and_tritonclient_were_answered(played):
    _, report = played
    client = report["kserve_client"]
    assert client["ok"] and all(client["checks"].values()), client
    assert client["v1"]["answer_keys"] == ["predictions"] and client["v2"]["output"]["datatype"] == "FP32"
    assert report["tritonclient"]["ok"] and len(report["tritonclient"]["classification"]) == 3
    assert "Read-only file system" in report["checks"]["model_store_read_only"]["write"]
