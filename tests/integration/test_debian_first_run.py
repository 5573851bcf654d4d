"""The README's serve command on a fresh Debian 13 (trixie), as root and as an unprivileged user, in a
podman container (scripts/container/debian_first_run.sh; scripts/container/debian_first_run.py has the checks).

Opt-in, as root: it installs Java, nginx and Python in the container and PyTorch from pip's index into
two virtual environments (about 10 minutes). CI runs it (.ci/run):

    DEBIAN_FIRST_RUN=1 scripts/test.sh -rA tests/integration/test_debian_first_run.py

FIRST_RUN_SUITE=1 also runs scripts/test.sh inside the container (the whole suite, much longer).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.service import REPO_ROOT
from tests.support import assert_every_check_passed, run_report_script

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DEBIAN_FIRST_RUN") != "1",
                       reason="opt-in, installs everything in a Debian 13 container (about 10 minutes): "
                              "DEBIAN_FIRST_RUN=1 scripts/test.sh tests/integration/test_debian_first_run.py (as root)"),
]

CHECKS = {
    "disk_space_for_two_installs", "fresh_debian_13", "root_serve_detach_exit_0", "root_health_200",
    "root_info_200_json", "root_predict_200", "root_text_415_json", "root_get_page_200",
    "root_get_openapi.json_200", "python_3_11_to_3_13_and_java_17_plus",
    "user_created_with_private_home", "user_serve_detach_exit_0", "user_health_200", "user_predict_200",
    "nginx_workers_run_as_each_instance_user", "root_beside_user_health_200", "user_stop_exit_0", "root_stop_exit_0",
}


@pytest.fixture(scope="module")
def first_run() -> tuple[subprocess.CompletedProcess, dict]:
    report_path = Path(os.environ.get("FIRST_RUN_REPORT", REPO_ROOT / "test-artifacts" / "debian13_first_run.json"))
    return run_report_script([str(REPO_ROOT / "scripts" / "container" / "debian_first_run.sh")], report_path,
                             timeout=5400, env={"FIRST_RUN_REPORT": str(report_path)})


@pytest.mark.timeout(5600)
def test_every_check_passes_on_debian_13(first_run):
    assert_every_check_passed(*first_run, CHECKS)


def test_python_and_java_are_debian_13s(first_run):
    _, report = first_run
    versions = " ".join(report["versions"])
    assert "Python 3.13" in versions, versions
    check = report["checks"]["python_3_11_to_3_13_and_java_17_plus"]
    assert int(check["java"]) >= 21, check  # trixie's default Java
