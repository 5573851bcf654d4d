"""The README's curl examples work verbatim (only the host:port is pointed at the test service)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests

from tests.integration.service import REPO_ROOT

pytestmark = pytest.mark.integration


def readme_curl_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.startswith("curl ") and "localhost:5000" in line]


def test_readme_has_curl_examples_for_every_route_and_form():
    commands = readme_curl_commands()
    assert sum("/predict" in c for c in commands) >= 3
    assert any("/health" in c for c in commands) and any("/info" in c for c in commands)


@pytest.mark.parametrize("command", readme_curl_commands())
def test_readme_curl_example(service, command):
    command = command.replace("http://localhost:5000", service.base_url)
    if "/metrics" in command:  # make sure there is a counter to show
        requests.post(service.url("/predict"), data=(REPO_ROOT / "tests/fixtures/sample.jpg").read_bytes(), timeout=30)
    result = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if "/metrics" in command:
        assert 'resnet50_requests_total{ModelName="resnet50",status="200"' in result.stdout
        return
    body = json.loads(result.stdout)
    if "/predict" in command and "results" in body:  # the multi-image examples: one good, one bad image
        assert body["summary"] == {"images": 2, "succeeded": 1, "failed": 1}
        assert len(body["results"][0]["predictions"]) == 3 and body["results"][1]["error"]["code"]
    elif "/predict" in command:
        assert len(body["predictions"]) == 3
    elif "/health" in command:
        assert body["status"] == "healthy"
    elif "/v2/" in command:  # the Open Inference Protocol example: classification extension, k = 3
        assert body["id"] == "1" and body["outputs"][0]["datatype"] == "BYTES"
        assert body["outputs"][0]["shape"] == [1, 3] and len(body["outputs"][0]["data"]) == 3
    else:
        assert body["default"][0]["customizedMetadata"]["architecture"] == "resnet50"
