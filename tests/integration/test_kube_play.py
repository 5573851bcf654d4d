"""The Kubernetes manifest's pod run for real with `podman kube play` (scripts/container/kube_play.py).

Opt-in, as root, after scripts/container/container_smoke.sh has built resnet50-serve:smoke:

    KUBE_PLAY=1 scripts/test.sh tests/integration/test_kube_play.py

About 25-45 s on the 2-core build machine (start-up of the service is most of it). The checks are
the script's (docs/deployment.md "The manifest under podman kube play"). Of the probes,
podman 4.3 applies only the livenessProbe (as the container's healthcheck, which must pass); the
others are findings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.service import REPO_ROOT
from tests.support import assert_every_check_passed, run_report_script

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("KUBE_PLAY") != "1",
        reason="opt-in, runs the image built by scripts/container/container_smoke.sh with podman kube play: "
               "KUBE_PLAY=1 scripts/test.sh tests/integration/test_kube_play.py (as root)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman kube play with the host's storage needs root"),
]

CHECKS = {
    "ready_within_startup_budget", "health_200", "live_200", "info_200", "predict_jpeg_200",
    "v2_health_ready_200", "v2_model_ready_200", "processes_run_as_run_as_user", "run_as_non_root",
    "read_only_root_filesystem", "capabilities_all_dropped", "no_new_privileges", "seccomp_runtime_default",
    "env_as_manifest", "resource_limits_as_manifest", "ports_on_loopback_only", "liveness_healthcheck_passes", "metrics_on_metrics_port_only",
    "sigterm_stop_within_grace_exit_0", "nothing_left_behind",
}


@pytest.fixture(scope="module")
def played() -> tuple[subprocess.CompletedProcess, dict]:
    # Kept after the run (test-artifacts/ is gitignored): docs/performance.md quotes the last result.
    report_path = Path(os.environ.get("KUBE_PLAY_REPORT", REPO_ROOT / "test-artifacts" / "kube_play.json"))
    return run_report_script([sys.executable, "-m", "scripts.container.kube_play", "--report", str(report_path)], report_path, timeout=900)


@pytest.mark.timeout(1000)
def test_every_check_passes(played):
    assert_every_check_passed(*played, CHECKS)


def test_the_manifests_security_context_applied(played):
    _, report = played
    checks = report["checks"]
    assert checks["processes_run_as_run_as_user"]["uids"] == [10001]
    assert checks["processes_run_as_run_as_user"]["processes"] >= 5  # supervisor, TorchServe, java, nginx, worker
    assert "Read-only file system" in checks["read_only_root_filesystem"]["write_under_root"]
    assert checks["capabilities_all_dropped"]["processes_holding_capabilities"] == {}
    assert report["pod_yaml"]["spec"]["containers"][0]["ports"][0]["hostIP"] == "127.0.0.1"


def test_every_declared_probe_is_accounted_for(played):
    _, report = played
    probes = report["probes"]
    assert set(probes) == {"startupProbe", "livenessProbe", "readinessProbe"}
    for kind, finding in probes.items():
        assert finding["applied"] == bool(finding["applied_as"]), kind
        if finding["applied"]:
            assert finding["podman_command"] and "run_once" in finding, kind
    # podman has no readiness gate: nothing could carry it.
    assert not probes["readinessProbe"]["applied"]


def test_liveness_healthcheck_passes_under_podman(played):
    # podman runs the httpGet livenessProbe as `curl -f http://localhost:5000/live` inside the
    # container: it passes only because the image installs curl (Dockerfile, layer 1).
    _, report = played
    liveness = report["probes"]["livenessProbe"]
    assert liveness["applied_as"] == ["healthcheck"], liveness
    assert "curl" in liveness["podman_command"] and any("/live" in part for part in liveness["podman_command"])
    run = liveness["run_once"]
    assert run["exit_code"] == 0 and run["passed"] and run["health_status"] == "healthy", run
    assert report["checks"]["liveness_healthcheck_passes"]["ok"]
