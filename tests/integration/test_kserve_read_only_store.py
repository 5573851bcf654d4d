"""A read-only MODEL_STORE, as KServe mounts storageUri at /mnt/models: served, never written.

The store is a read-only bind mount in a private mount namespace (``unshare --mount``), so it is
read-only even to root, as a readOnly volume is to a container; the supervisor runs inside that
namespace in the foreground, as the pod's entrypoint does. What the tests prove, with the store's
source directory hashed before and after each run:

- an archive there is served (/health, /predict, KServe v1) and nothing is written beside it: TorchServe
  unpacks it, and the configs are rendered, under the instance's own RUN_DIR;
- a version set (resnet50.deployed.json naming resnet50-2.0.mar, no resnet50.mar) serves its default,
  and an archive holding older handler code is served as it is, with one warning, never repacked;
- a missing archive fails the start, in one line naming the store, without trying to build one.

Needs root (a mount namespace); the suite's archive (tests/integration/service.py SUITE_STORE) is made
fresh first, as a start of the service would make it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from scripts import REPO_ROOT
from scripts.archive.archive_info import archive_is_stale
from tests.integration.service import SUITE_ARCHIVE_ENV, SUITE_STORE, service_env, variant_archive
from tests.support import jpeg_bytes, no_private_mount_namespace

CANNOT_MOUNT = no_private_mount_namespace()
pytestmark = pytest.mark.skipif(CANNOT_MOUNT is not None, reason=f"a read-only bind mount: {CANNOT_MOUNT}")

MODEL = "resnet50"
START_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def suite_archive() -> Path:
    """The suite's archive, built or repacked as the service's own start would (MODEL_WEIGHTS=random)."""
    SUITE_STORE.mkdir(parents=True, exist_ok=True)
    archive = SUITE_STORE / f"{MODEL}.mar"
    if not archive.exists() or archive_is_stale(archive):
        command = [sys.executable, "-m", "scripts.archive.build_mar"]
        if archive.exists():
            command.append("--refresh-handler")
        env = {**os.environ, **SUITE_ARCHIVE_ENV, "MODEL_STORE": str(SUITE_STORE), "ENV_FILE": "/dev/null"}
        subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, timeout=600)
    return archive


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under root: type, mode, size, mtime and content hash; any write changes it."""
    state = {".": ("dir", root.stat().st_mode, root.stat().st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        state[str(path.relative_to(root))] = (path.is_dir(), info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return state


class ReadOnlyStoreService:
    """The supervisor in the foreground, inside a mount namespace where MODEL_STORE is a read-only bind
    mount of ``source``."""

    def __init__(self, source: Path, work: Path) -> None:
        self.source = source
        self.mount = work / "mnt-models"
        self.mount.mkdir()
        self.run_dir = work / "run"
        self.env = service_env(self.run_dir, self.mount, {"LOG_FORMAT": "json"})
        self.base_url = f"http://127.0.0.1:{self.env['PORT']}"
        self.log = work / "service.log"
        script = (f'mount --bind "{source}" "{self.mount}" && mount -o remount,bind,ro "{self.mount}" '
                  f'&& exec "{sys.executable}" -m scripts.service.supervisor')
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return self.base_url + path

    def wait_ready(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_S:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            try:
                if requests.get(self.url("/health"), timeout=3).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise AssertionError(f"not ready within {START_TIMEOUT_S} s:\n{self.log_text()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to sh's exec: the supervisor itself
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self) -> list[dict]:
        lines = []
        for raw in self.log_text().splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                lines.append(entry)
        return lines


def serves(service: ReadOnlyStoreService) -> dict:
    """/health's body after /predict and KServe v1 answered 200."""
    image = jpeg_bytes(96, 72, seed=70)
    predict = requests.post(service.url("/predict"), data=image, timeout=60)
    assert predict.status_code == 200, predict.text
    v1 = requests.post(service.url(f"/v1/models/{MODEL}:predict"), timeout=60,
                       json={"instances": [{"data": base64.b64encode(image).decode()}]})
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"][0]["predictions"] == predict.json()["predictions"]
    return requests.get(service.url("/health"), timeout=10).json()


def test_an_archive_in_a_read_only_store_is_served_and_nothing_is_written(suite_archive, tmp_path):
    source = tmp_path / "store"
    source.mkdir()
    shutil.copy2(suite_archive, source / suite_archive.name)
    before = tree_state(source)
    service = ReadOnlyStoreService(source, tmp_path)
    try:
        service.wait_ready()
        health = serves(service)
        assert health["model"] == {"name": MODEL, "version": "1.0"}
        unpacked = list((service.run_dir / "tmp").rglob("MAR-INF"))  # TorchServe unpacked it in RUN_DIR
    finally:
        code = service.stop()
    assert code == 0, service.log_text()[-3000:]
    assert tree_state(source) == before
    assert unpacked, "TorchServe's unpacked archive was not under RUN_DIR"
    events = {entry.get("event") for entry in service.events()}
    assert not events & {"build_archive", "repack_archive", "stale_archive_served"}, events


def test_a_version_set_with_stale_handler_code_is_served_as_it_is(suite_archive, tmp_path):
    source = tmp_path / "store"
    with zipfile.ZipFile(suite_archive) as archive:
        meta = json.loads(archive.read("model_meta.json"))
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
    meta["handler_sha256"] = "0" * 64  # handler code from another version of handler/
    manifest["model"]["modelVersion"] = "2.0"
    stale = variant_archive(suite_archive, source, {"model_meta.json": json.dumps(meta).encode(),
                                                    "MAR-INF/MANIFEST.json": json.dumps(manifest).encode()})
    stale.rename(source / f"{MODEL}-2.0.mar")
    (source / f"{MODEL}.deployed.json").write_text(json.dumps(
        {"default": {"archive": f"{MODEL}-2.0.mar", "version": "2.0"}, "history": []}))
    assert archive_is_stale(source / f"{MODEL}-2.0.mar")
    before = tree_state(source)
    service = ReadOnlyStoreService(source, tmp_path)
    try:
        service.wait_ready()
        health = serves(service)
    finally:
        code = service.stop()
    assert code == 0, service.log_text()[-3000:]
    assert health["model"] == {"name": MODEL, "version": "2.0"}
    assert tree_state(source) == before
    warnings = [e for e in service.events() if e.get("event") == "stale_archive_served"]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"
    assert f"{MODEL}-2.0.mar" in warnings[0]["message"] and "read-only" in warnings[0]["message"]
    assert not any(e.get("event") in ("build_archive", "repack_archive") for e in service.events())


def test_a_missing_archive_fails_the_start_in_one_line(tmp_path):
    source = tmp_path / "store"
    source.mkdir()
    (source / "README").write_text("no archive here")
    before = tree_state(source)
    service = ReadOnlyStoreService(source, tmp_path)
    try:
        code = service.process.wait(timeout=120)
    finally:
        service.stop()
    assert code != 0
    failures = [e for e in service.events() if e.get("level") == "CRITICAL"]
    assert len(failures) == 1, service.log_text()
    message = failures[0]["message"]
    assert "\n" not in message and f"{MODEL}.mar" in message and str(service.mount) in message
    assert "read-only" in message
    assert not any(e.get("event") == "build_archive" for e in service.events())
    assert tree_state(source) == before
