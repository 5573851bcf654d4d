"""One real service (TorchServe + nginx via scripts/serve.sh --detach) for the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.service import REPO_ROOT, start_service


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    # The repo's model_store: built by serve.sh on first use, reused afterwards (as a user would).
    running = start_service(tmp_path_factory.mktemp("run"), REPO_ROOT / "model_store")
    yield running
    result = running.stop()
    assert result.returncode == 0, result.stdout + result.stderr
