"""Zero-downtime version switches (scripts/manage/deploy_model.py) under continuous load through :PORT,
on an instance of its own (its own model store), so the shared instance keeps version 1.0."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.support import jpeg_bytes
from tests.integration.service import DEFAULT_TOP_K, REPO_ROOT, start_service, variant_archive

pytestmark = pytest.mark.integration

IMAGE = jpeg_bytes(160, 120, seed=11)
CLIENTS = 2


def manifest_with_version(archive, version: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(archive) as mar:
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
    manifest["model"]["modelVersion"] = version
    return json.dumps(manifest).encode()


@pytest.fixture(scope="module")
def versioned(service, tmp_path_factory):
    """An instance serving 1.0 from its own store, plus a 2.0 archive outside that store."""
    base = tmp_path_factory.mktemp("versions")
    store = base / "store"
    variant_archive(service.archive, store, {})
    v2 = variant_archive(service.archive, base / "v2", {"MAR-INF/MANIFEST.json": manifest_with_version(service.archive, "2.0")})
    running = start_service(base / "run", store, {"WORKERS": "1"}, watch_health=False)
    yield running, v2
    running.stop()


class Load:
    """CLIENTS threads posting the same image until stopped: (client, status, version) in order."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.results: list[list[tuple[int, str | None]]] = [[] for _ in range(CLIENTS)]
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)]

    def _client(self, index: int) -> None:
        session = requests.Session()
        deadline = time.monotonic() + 240  # bounded even if the test body fails
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                response = session.post(self.base_url + "/predict", data=IMAGE, timeout=60)
                version = response.json().get("model", {}).get("version") if response.status_code == 200 else None
                self.results[index].append((response.status_code, version))
            except requests.RequestException as error:
                self.results[index].append((0, type(error).__name__))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        time.sleep(3)  # traffic on the old version first
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(3)  # and on the new one after
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def summary(self) -> dict:
        every = [r for client in self.results for r in client]
        return {"requests": len(every), "failed": [r for r in every if r[0] != 200]}


def deploy(running, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.manage.deploy_model", *args],
                          env=running.env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


def assert_switched_once(load: Load, old: str, new: str) -> None:
    for client in load.results:
        versions = [version for _, version in client]
        assert versions[0] == old and versions[-1] == new, versions
        changes = sum(1 for a, b in zip(versions, versions[1:]) if a != b)
        assert changes == 1, f"version flapped: {versions}"


def info(running) -> dict:
    body = requests.get(running.url("/info"), timeout=10).json()
    return {"default": body["default"][0]["modelVersion"],
            "versions": sorted(v["modelVersion"] for v in body["versions"]),
            "handler_metadata": body["default"][0]["customizedMetadata"]["architecture"] == "resnet50"}


def test_switch_to_a_new_version_under_load_then_roll_back(versioned):
    running, v2 = versioned
    assert info(running) == {"default": "1.0", "versions": ["1.0"], "handler_metadata": True}

    with Load(running.base_url) as load:
        result = deploy(running, str(v2))
    assert result.returncode == 0, result.stderr
    summary = load.summary()
    print(f"\nswitch 1.0 -> 2.0 under load: {summary['requests']} requests, {len(summary['failed'])} failed")
    assert summary["failed"] == [] and summary["requests"] >= 10
    assert_switched_once(load, "1.0", "2.0")
    assert info(running) == {"default": "2.0", "versions": ["2.0"], "handler_metadata": True}
    record = json.loads((running.model_store / "resnet50.deployed.json").read_text())
    assert record["default"]["version"] == "2.0" and record["history"][-1]["version"] == "1.0"
    steps = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert steps == ["register", "ready", "default", "unregistered"]

    with Load(running.base_url) as load:
        result = deploy(running, "--rollback")
    assert result.returncode == 0, result.stderr
    summary = load.summary()
    print(f"rollback 2.0 -> 1.0 under load: {summary['requests']} requests, {len(summary['failed'])} failed")
    assert summary["failed"] == []
    assert_switched_once(load, "2.0", "1.0")
    assert info(running) == {"default": "1.0", "versions": ["1.0"], "handler_metadata": True}


def test_refused_switches_leave_the_service_as_it_was(versioned, tmp_path):
    running, _ = versioned
    before = info(running)
    other_name = json.loads(manifest_with_version(running.archive, before["default"]))
    other_name["model"]["modelName"] = "other"
    wrong = variant_archive(running.archive, tmp_path / "wrong", {"MAR-INF/MANIFEST.json": json.dumps(other_name).encode()})
    same = variant_archive(running.archive, tmp_path / "same", {})
    for archive, message in ((wrong, "holds model 'other'"), (same, "already the default"),
                             (tmp_path / "missing.mar", "not a model archive")):
        result = deploy(running, str(archive))
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert info(running) == before
    assert requests.post(running.url("/predict"), data=IMAGE, timeout=60).status_code == 200
    status = json.loads(deploy(running, "--status").stdout)
    assert status["default"] == before["default"] and [v["workers"] for v in status["versions"]] == [["READY"]]


def test_management_api_needs_the_token(versioned):
    running, _ = versioned
    management = f"http://127.0.0.1:{running.env['TS_MANAGEMENT_PORT']}"
    for method, path in (("POST", "/models?url=resnet50.mar"), ("DELETE", "/models/resnet50"),
                         ("PUT", "/models/resnet50/1.0/set-default"), ("GET", "/models")):
        response = requests.request(method, management + path, timeout=10)
        assert response.status_code in (400, 401), (method, path, response.status_code)
    inference = f"http://127.0.0.1:{running.env['TS_INFERENCE_PORT']}"
    assert requests.post(f"{inference}/predictions/resnet50", data=IMAGE, timeout=10).status_code in (400, 401)
    key_file = running.run_dir / "key_file.json"
    assert key_file.stat().st_mode & 0o077 == 0  # readable by the service's user only


def test_switch_between_a_1000_class_and_a_4_class_model_under_load(versioned, demo_model, tmp_path):
    """A custom model is just another version: the 4-class demo model replaces the ImageNet one
    under load with zero failed requests, answers with its own labels, and rolls back."""
    from scripts.archive.demo_model import CLASSES, PREPROCESSING_ARGS

    running, _ = versioned
    before = info(running)["default"]
    build = subprocess.run(
        [sys.executable, "-m", "scripts.archive.build_mar", "--weights", str(demo_model.checkpoint),
         "--labels", str(demo_model.labels), "--preprocessing", *PREPROCESSING_ARGS, "--name", "resnet50",
         "--version", "4.0", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert build.returncode == 0, build.stderr

    with Load(running.base_url) as load:
        result = deploy(running, str(tmp_path / "resnet50.mar"))
    assert result.returncode == 0, result.stderr
    summary = load.summary()
    print(f"\nswitch {before} (1000 classes) -> 4.0 (4 classes) under load: {summary['requests']} requests, "
          f"{len(summary['failed'])} failed")
    assert summary["failed"] == [] and summary["requests"] >= 10
    assert_switched_once(load, before, "4.0")
    body = requests.post(running.url("/predict"), data=IMAGE, timeout=60).json()
    assert body["model"]["version"] == "4.0" and all(p["label"] in CLASSES for p in body["predictions"])
    assert len(body["predictions"]) == min(DEFAULT_TOP_K, len(CLASSES))
    meta = requests.get(running.url("/info"), timeout=10).json()["default"][0]["customizedMetadata"]
    assert meta["classes"]["count"] == 4 and meta["limits"]["top_k"]["max"] == 4
    # The Open Inference Protocol's metadata and answers follow the default version's archive.
    v2 = requests.get(running.url("/v2/models/resnet50"), timeout=10).json()
    assert v2["outputs"][0]["shape"] == [-1, 4] and "4.0" in v2["versions"], v2
    tensor = {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(IMAGE).decode()]}
    infer = requests.post(running.url("/v2/models/resnet50/infer"), json={"inputs": [tensor]}, timeout=60).json()
    assert infer["model_version"] == "4.0" and infer["outputs"][0]["shape"] == [1, 4], infer

    with Load(running.base_url) as load:
        result = deploy(running, "--rollback")
    assert result.returncode == 0, result.stderr
    summary = load.summary()
    print(f"rollback 4.0 -> {before} under load: {summary['requests']} requests, {len(summary['failed'])} failed")
    assert summary["failed"] == []
    assert_switched_once(load, "4.0", before)
    body = requests.post(running.url("/predict?top_k=5"), data=IMAGE, timeout=60).json()
    assert len(body["predictions"]) == 5 and body["model"]["version"] == before
