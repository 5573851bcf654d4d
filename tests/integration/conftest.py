"""One real service (TorchServe + nginx via scripts/serve.sh --detach) for the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.service import SUITE_ARCHIVE_ENV, SUITE_STORE, start_service


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    # The suite's own store (tests/integration/service.py SUITE_STORE): built by serve.sh on first
    # use with MODEL_WEIGHTS=random, reused afterwards.
    SUITE_STORE.mkdir(parents=True, exist_ok=True)
    running = start_service(tmp_path_factory.mktemp("run"), SUITE_STORE, SUITE_ARCHIVE_ENV)
    yield running
    result = running.stop()
    assert result.returncode == 0, result.stdout + result.stderr
