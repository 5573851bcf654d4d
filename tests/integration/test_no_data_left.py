"""Nothing from a request is written to disk: a few hundred requests (valid, invalid, large)
leave no new file under the repository or the service's working directories (RUN_DIR, which
holds TorchServe's and the workers' temp dir and nginx's temp paths), and no file anywhere
under the system temp dir holds request bytes (other programs may use /tmp meanwhile, so
there the check is for a marker carried by every request body)."""

from __future__ import annotations

import base64
import os
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support import jpeg_bytes, png_bytes
from tests.integration.service import MAX_FILE_SIZE, REPO_ROOT

pytestmark = pytest.mark.integration

SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis"}


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith("pytest-of-")]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            files[str(path)] = (stat.st_size, stat.st_mtime)
    return files


def holds_marker(path: str, marker: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return marker in handle.read(64 * 1024 * 1024)
    except OSError:
        return False


def test_requests_leave_no_files_behind(service):
    marker = b"REQUEST-MARKER-" + os.urandom(12).hex().encode()  # trailing bytes are ignored by decoders
    big = b"\xff\xd8\xff" + os.urandom(MAX_FILE_SIZE * 6 // 10) + marker  # near the limit, in nginx's body buffer
    valid = jpeg_bytes(640, 480, seed=1) + marker
    requests_to_send = (
        [{"data": valid}] * 40
        + [{"files": {"file": ("a.png", png_bytes(300, 200) + marker)}, "data": {"top_k": "3"}}] * 30
        + [{"json": {"image": base64.b64encode(valid).decode(), "note": marker.decode()}}] * 30
        + [{"data": b"not an image" + marker}] * 60 + [{"data": big}] * 20 + [{"data": valid[:1000] + marker}] * 60
        + [{"data": b"\x00" * (MAX_FILE_SIZE + (1 << 20)) + marker}] * 10
    )
    system_tmp = Path(tempfile.gettempdir())
    roots = [REPO_ROOT, service.run_dir, system_tmp]
    log = str(service.run_dir / "service.log")
    before = {root: snapshot(root) for root in roots}

    def send(kwargs):
        return requests.post(service.url("/predict"), timeout=60, **kwargs).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(send, requests_to_send))
    # Every request was answered as its kind deserves (so each one really reached the service).
    assert Counter(statuses) == {200: 100, 415: 60, 400: 80, 413: 10}, Counter(statuses)

    changed = []
    for root in roots:
        after = snapshot(root)
        for path, meta in after.items():
            if path == log:
                continue  # the detached log is the one file the service writes, by design
            new_or_changed = path not in before[root] or (root != REPO_ROOT and before[root][path] != meta)
            if not new_or_changed:
                continue
            if root == system_tmp and not holds_marker(path, marker):
                continue  # another program's file; it carries no request data
            changed.append(path)
    assert not changed, changed[:20]
