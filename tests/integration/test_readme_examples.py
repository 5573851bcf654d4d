"""The curl examples of README.md and docs/api.md work verbatim (only the host:port is pointed at the
test service), so does docs/api.md's tritonclient.grpc example (only its port and interpreter), and the
answer README.md shows has the shape the service really answers with."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
import requests

from handler.settings_table import BY_NAME
from tests.integration.service import REPO_ROOT

pytestmark = pytest.mark.integration

PAGES_WITH_EXAMPLES = ("README.md", "docs/api.md")


def curl_commands(page: str) -> list[str]:
    """The page's curl lines aimed at the default public port, in order, comments dropped."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.startswith("curl ") and "localhost:5000" in line]


def example_commands() -> list[str]:
    """Every page's examples, each once (the README repeats one of docs/api.md's)."""
    return list(dict.fromkeys(c for page in PAGES_WITH_EXAMPLES for c in curl_commands(page)))


def run_curl(command: str, base_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command.replace("http://localhost:5000", base_url)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_pages_have_curl_examples_for_every_route_and_form():
    assert curl_commands("README.md"), "README.md shows no curl example"
    commands = example_commands()
    assert sum("/predict" in c for c in commands) >= 3  # multipart, raw body, JSON (and several images)
    for route in ("/health", "/info", "/metrics", "/v2/models/resnet50/infer", "/v1/models/resnet50:predict"):
        assert any(route in c for c in commands), route


@pytest.mark.parametrize("command", example_commands())
def test_curl_example(service, command):
    if "/metrics" in command:  # make sure there is a counter to show
        requests.post(service.url("/predict"), data=(REPO_ROOT / "tests/fixtures/sample.jpg").read_bytes(), timeout=30)
    result = run_curl(command, service.base_url)
    assert result.returncode == 0, result.stderr
    if "/metrics" in command:
        assert 'resnet50_requests_total{ModelName="resnet50",status="200"' in result.stdout
        return
    body = json.loads(result.stdout)
    if "/v1/" in command and ":predict" in command:  # KServe v1: one instance, its top_k of 3
        [result_of_instance] = body["predictions"]
        assert result_of_instance["status"] == 200 and len(result_of_instance["predictions"]) == 3
    elif "/v1/" in command:  # KServe v1 model readiness
        assert body == {"name": "resnet50", "ready": True}
    elif "/predict" in command and "results" in body:  # the multi-image examples: one good, one bad image
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


def test_the_readme_answer_is_shaped_like_the_real_one(service):
    """README.md shows one request and its answer: the answer must have the fields, the number of
    predictions and the prediction fields that the service really sends for that request."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    shown = json.loads(re.findall(r"```json\n(.*?)```", text, flags=re.S)[0])
    command = curl_commands("README.md")[0]
    result = run_curl(command, service.base_url)
    assert result.returncode == 0, result.stderr
    real = json.loads(result.stdout)
    assert set(shown) == set(real)
    assert set(shown["model"]) == set(real["model"]) and set(shown["timing_ms"]) == set(real["timing_ms"])
    assert len(shown["predictions"]) == len(real["predictions"])
    assert [set(p) for p in shown["predictions"]] == [set(p) for p in real["predictions"]]
    assert shown["image"] == real["image"]  # the same file: the same size and format


def python_heredocs(page: str) -> list[str]:
    """The page's bash blocks that feed a Python script to the venv's interpreter."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    return [block for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
            if block.startswith(".venv/bin/python - <<'EOF'\n")]


def test_grpc_example(service):
    """docs/api.md's tritonclient.grpc example, run as written but for the port (the example names the
    default GRPC_PORT, the test service has a free one) and the interpreter (this test's own)."""
    [example] = [block for block in python_heredocs("docs/api.md") if "tritonclient.grpc" in block]
    default_target = f"localhost:{BY_NAME['GRPC_PORT'].default}"
    assert default_target in example, f"the example should call the default GRPC_PORT ({default_target})"
    script = example.replace(default_target, f"localhost:{service.env['GRPC_PORT']}")
    script = script.replace(".venv/bin/python", shlex.quote(sys.executable), 1)
    result = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ready: True True"
    top1 = int(re.match(r"top-1 class id: (\d+) probability: [0-9.]+$", lines[1]).group(1))
    classified = re.findall(r"b'([0-9.]+):(\d+):[^']*'", " ".join(lines[2:]))
    assert len(classified) == 3 and int(classified[0][1]) == top1
    # The same image over HTTP: the same top class (one pipeline behind both).
    answer = requests.post(service.url("/predict"), data=(REPO_ROOT / "tests/fixtures/sample.jpg").read_bytes(),
                           timeout=30).json()
    assert answer["predictions"][0]["class_id"] == top1
