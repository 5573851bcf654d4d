"""The archive records a fingerprint of its handler code; a changed handler/ makes it stale."""

import json
import shutil
import zipfile

from scripts.archive.archive_info import REPO_ROOT, archive_is_stale, handler_fingerprint


def write_archive(path, meta):
    with zipfile.ZipFile(path, "w") as mar:
        mar.writestr("model_meta.json", json.dumps(meta))


def test_fingerprint_follows_handler_sources(tmp_path):
    copy = tmp_path / "handler"
    shutil.copytree(REPO_ROOT / "handler", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert handler_fingerprint(copy) == handler_fingerprint()
    (copy / "decoding.py").write_text((copy / "decoding.py").read_text() + "\n# changed\n")
    assert handler_fingerprint(copy) != handler_fingerprint()


def test_staleness(tmp_path):
    current = tmp_path / "current.mar"
    write_archive(current, {"handler_sha256": handler_fingerprint()})
    old = tmp_path / "old.mar"
    write_archive(old, {"handler_sha256": "0" * 64})
    legacy = tmp_path / "legacy.mar"
    write_archive(legacy, {})
    broken = tmp_path / "broken.mar"
    broken.write_bytes(b"not a zip")
    assert not archive_is_stale(current)
    assert archive_is_stale(old) and archive_is_stale(legacy) and archive_is_stale(broken)
